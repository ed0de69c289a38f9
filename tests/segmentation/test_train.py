"""train-seg: reproducible, resumable, batches that shard exactly, real and generated folders, one-line errors."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from augpaint_fast.cli.main import main
from augpaint_fast.errors import AugPaintError
from augpaint_fast.segmentation import train as train_mod
from augpaint_fast.segmentation.model import load_run
from augpaint_fast.segmentation.train import BatchStream, train_segmentation
from augpaint_fast.training.ddp import DistContext
from augpaint_fast.training.shared import STATE_FILE

from .conftest import TINY, write_generated


def _weights(run):
    return load_file(run / "model.safetensors")


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_runs_are_bit_identical_and_the_run_rebuilds(seg_data, tmp_path):
    r1 = train_segmentation([seg_data], tmp_path / "a", **TINY)
    train_segmentation([seg_data], tmp_path / "b", **TINY)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    train_segmentation([seg_data], tmp_path / "c", **{**TINY, "seed": 1})
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))
    model, cfg, meta = load_run(tmp_path / "a")
    assert (cfg.classes, cfg.channels, cfg.size, cfg.num_res_units) == (3, 4, 32, 1)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)
    t = meta["training"]
    assert t["steps"] == 6 and t["epochs"] == pytest.approx(6 * 4 / 6) and t["length_from"] == "steps"
    assert r1.steps == 6 and r1.pairs == 6 and np.isfinite(r1.final_loss)
    assert not (tmp_path / "a" / STATE_FILE).exists()
    again = train_segmentation([seg_data], tmp_path / "a", **TINY)  # finished: nothing retrained
    assert again.already_done and again.final_loss == pytest.approx(r1.final_loss)


def test_epochs_decide_the_steps(seg_data, tmp_path):
    r = train_segmentation([seg_data], tmp_path / "e", **{**TINY, "steps": None, "epochs": 2})
    assert r.steps == 3  # ceil(2 epochs * 6 pairs / batch 4)
    meta = json.loads((tmp_path / "e" / "config.json").read_text())["training"]
    assert meta["length_from"] == "epochs" and meta["epochs"] == pytest.approx(2.0)
    with pytest.raises(AugPaintError, match="not both"):
        train_segmentation([seg_data], tmp_path / "x", **{**TINY, "epochs": 2})


def _interrupt_after(monkeypatch, calls):
    original = BatchStream.batch
    count = {"n": 0}

    def batch_or_stop(self, step):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(BatchStream, "batch", batch_or_stop)


def test_interrupted_run_resumes_to_the_same_weights_and_refuses_other_settings(seg_data, tmp_path, monkeypatch):
    cfg = {**TINY, "augment": "light"}
    train_segmentation([seg_data], tmp_path / "full", **cfg)
    with monkeypatch.context() as m:
        _interrupt_after(m, 5)
        with pytest.raises(KeyboardInterrupt):
            train_segmentation([seg_data], tmp_path / "cut", **cfg)
    state = torch.load(tmp_path / "cut" / STATE_FILE, weights_only=True)
    assert state["step"] == 4 and not (tmp_path / "cut" / "config.json").exists()
    with pytest.raises(AugPaintError, match="lr"):
        train_segmentation([seg_data], tmp_path / "cut", **{**cfg, "lr": 1e-3})
    train_segmentation([seg_data], tmp_path / "cut", **cfg)
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    with pytest.raises(AugPaintError, match="finished run with other settings"):
        train_segmentation([seg_data], tmp_path / "cut", **{**cfg, "seed": 5})


@pytest.mark.parametrize("n", [1, 3, 6, 10])
def test_process_shards_make_up_the_single_process_batch(n):
    one = BatchStream(n, 4, seed=3, ctx=DistContext())
    two = [BatchStream(n, 4, seed=3, ctx=DistContext(rank=r, world_size=2)) for r in range(2)]
    seen = []
    for step in range(3 * one.steps_per_pass):
        single = sorted(one.batch(step))
        assert len(single) == 4
        assert sorted(two[0].batch(step) + two[1].batch(step)) == single  # same pairs, same augmentation seeds
        seen += [i for i, _ in single]
    assert sorted(set(seen)) == list(range(n))
    counts = np.bincount(seen, minlength=n)
    assert counts.min() == counts.max()  # every pass uses each pair equally often


def test_real_and_generated_folders_mix(seg_data, tmp_path):
    gen = write_generated(tmp_path / "gen", seg_data, n=2)
    (gen / "images" / "in_flight.png").write_bytes((gen / "images" / "phantom_0000_0.png").read_bytes())
    r = train_segmentation([seg_data, gen], tmp_path / "run", **{**TINY, "steps": 2})
    assert r.pairs == 6 + 12  # the pair not in the manifest is not read


def test_cli_bad_inputs_are_one_error_line(seg_data, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(seg_data, bad)
    (bad / "labels" / "phantom_0001.png").unlink()
    common = ["--size", "32", "--channels", "4", "--steps", "1", "--device", "cpu"]
    assert main(["train-seg", "--data", str(bad), "--out", str(tmp_path / "r"), *common]) == 2
    assert "has no label" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["train-seg", "--data", str(seg_data), "--out", str(tmp_path / "r"), "--classes", "2", *common]) == 2
    assert "has class 3 but --classes is 2" in capsys.readouterr().err
    assert main(["train-seg", "--data", str(seg_data), "--out", str(tmp_path / "r"), *common, "--size", "30"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["train-seg", "--data", str(seg_data), "--out", str(tmp_path / "file"), *common]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exactly one of --epochs / --steps
        main(["train-seg", "--data", str(seg_data), "--out", str(tmp_path / "r"), "--epochs", "1", *common])
    assert main(["train-seg", "--data", str(seg_data), "--out", str(tmp_path / "ok"), *common]) == 0
    assert "segmenter trained: 1 steps" in capsys.readouterr().out


def test_monai_missing_is_one_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_monai(name, *a, **k):
        if name == "monai" or name.startswith("monai."):
            raise ImportError("No module named 'monai'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_monai)
    with pytest.raises(AugPaintError, match=r"augpaint-fast\[seg\]"):
        train_mod.build_unet(train_mod.SegModelConfig(classes=2, channels=4, size=32))
