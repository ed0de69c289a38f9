"""train-seg under torchrun: 2 CPU processes (gloo) give the single-process result for the same global batch.

Tolerance: the processes run the same batches (see train.BatchStream), so only floating-point summation
order differs (per-process batch 2 vs 4, gloo's gradient all-reduce). The trained networks' softmax outputs
on held-out images then agree to about 1e-6 (measured on this CPU: 5.4e-7 for this test's settings from
scratch, 1.3e-6 after 10 steps with 2 residual units); the test allows 1e-4. Raw weights are not compared:
the conv biases feeding an instance norm get a gradient that is pure rounding noise, which Adam scales to
±lr steps, so those biases differ between the runs (up to 2e-3 measured) while the network function does not.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from augpaint_fast.data.pairs import load_pairs, open_pairs
from augpaint_fast.segmentation.model import load_run
from augpaint_fast.segmentation.train import BatchStream, train_segmentation
from augpaint_fast.training.shared import STATE_FILE

from .conftest import SIZE, TINY

pytestmark = pytest.mark.slow

TOL = 1e-4


def _torchrun(data, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "augpaint_fast",
           "train-seg", "--data", str(data), "--out", str(out), "--size", str(SIZE), "--channels", "4",
           "--num-res-units", "1", "--steps", "6", "--checkpoint-every", "2", "--augment", "light",
           "--device", "cpu", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _softmax(run, images):
    model, _, _ = load_run(run)
    with torch.no_grad():
        return torch.softmax(model(images), 1)


def test_two_gloo_processes_resume_a_run_and_match_one_process(seg_data, seg_test, tmp_path, monkeypatch):
    """One torchrun launch (each costs seconds of imports): a single-process run interrupted after its step-2
    checkpoint is finished by 2 processes (steps 2-5, rank 0 writing the step-4 checkpoint and the outputs)
    and must equal the uninterrupted single-process run."""
    single = train_segmentation([seg_data], tmp_path / "single", **{**TINY, "augment": "light"})
    original = BatchStream.batch
    count = {"n": 0}

    def batch_or_stop(self, step):
        count["n"] += 1
        if count["n"] > 3:
            raise KeyboardInterrupt
        return original(self, step)

    with monkeypatch.context() as m:
        m.setattr(BatchStream, "batch", batch_or_stop)
        with pytest.raises(KeyboardInterrupt):
            train_segmentation([seg_data], tmp_path / "ddp", **{**TINY, "augment": "light"})
    assert torch.load(tmp_path / "ddp" / STATE_FILE, weights_only=True)["step"] == 2
    proc = _torchrun(seg_data, tmp_path / "ddp")
    assert proc.stdout.count("segmenter trained") == 1  # rank 0 reports, once
    meta = json.loads((tmp_path / "ddp" / "config.json").read_text())["training"]
    assert meta["world_size"] == 2 and meta["steps"] == 6 and not (tmp_path / "ddp" / STATE_FILE).exists()
    images = torch.from_numpy(load_pairs([open_pairs(seg_test)], SIZE, progress=False).images)
    assert (_softmax(tmp_path / "ddp", images) - _softmax(tmp_path / "single", images)).abs().max().item() <= TOL
    assert meta["final_loss"] == pytest.approx(single.final_loss, abs=1e-4)
