"""Run by tests/training/test_distributed_training.py under torchrun: train-ae then train-ldm through the CLI."""
import sys

from augpaint_fast.cli.main import main

data, weights = sys.argv[1], sys.argv[2]
common = ["--data", data, "--weights", weights, "--preset", "tiny", "--steps", "6", "--batch-size", "4",
          "--checkpoint-every", "3", "--device", "cpu"]
for command in ("train-ae", "train-ldm"):
    if main([command, *common]) != 0:
        sys.exit(1)
