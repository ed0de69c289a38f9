"""train-ae and train-ldm under torchrun: 2 CPU processes (gloo) give the single-process result for the same
global batch.

Every process draws the same global batch, timesteps and noise and trains on its half; DistributedDataParallel
averages the gradients, so only floating-point summation order differs from one process on the whole batch.
Measured on this CPU after 6 steps (tiny preset, batch 4), max difference relative to the outputs' scale:
encoder 7.7e-7, decoder 1.6e-6, U-Net 1.6e-7; the test allows 1e-4.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from augpaint_fast.models.checkpoint import load_weights_folder
from augpaint_fast.cli.main import main
from augpaint_fast.data.phantom import make_phantom

pytestmark = pytest.mark.slow

TOL = 1e-4


def test_two_gloo_processes_train_the_single_process_models(tmp_path):
    make_phantom(tmp_path / "data", n=4, seed=3, unlabelled=8, progress=False)
    script = Path(__file__).with_name("_ddp_train.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "data"), str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("autoencoder: 6 steps") == 1  # rank 0 reports, once
    common = ["--data", str(tmp_path / "data"), "--weights", str(tmp_path / "one"), "--preset", "tiny",
              "--steps", "6", "--batch-size", "4", "--checkpoint-every", "3", "--device", "cpu"]
    assert main(["train-ae", *common]) == 0 and main(["train-ldm", *common]) == 0
    ae1, _, unet1, _ = load_weights_folder(tmp_path / "one")
    ae2, _, unet2, cfg2 = load_weights_folder(tmp_path / "ddp")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    z, t = torch.randn(3, 3, 16, 16, generator=g), torch.tensor([5, 500, 995])
    with torch.no_grad():
        for a, b in ((ae1.encode(x), ae2.encode(x)), (ae1.decode_quantized(ae1.encode(x)), ae2.decode_quantized(ae1.encode(x))),
                     (unet1(z, t), unet2(z, t))):
            err = ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()
            print(f"2 processes vs 1: max relative difference {err:.2e}")
            assert err <= TOL
    assert not (tmp_path / "ddp" / "unet" / "train_state.pt").exists()
    meta = __import__("json").loads((tmp_path / "ddp" / "unet" / "config.json").read_text())["training"]
    assert meta["world_size"] == 2
