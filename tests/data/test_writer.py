"""OutputWriter: atomic pairs, manifest resume, config mismatch, unwritable folders."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from augpaint_fast.data import OutputWriter, read_image
from augpaint_fast.errors import AugPaintError

CFG = {"seed": 1, "weights_sha256": "ab" * 32, "steps": 50, "eta": 1.0, "mask_mode": "box"}


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32)
    lab = rng.integers(0, 3, (8, 8))
    return img, lab


def test_write_pair_and_resume(tmp_path):
    out = tmp_path / "out"
    w = OutputWriter(out, CFG)
    assert (out / "images").is_dir() and (out / "labels").is_dir()
    img, lab = _pair()
    assert not w.done("a_k0")
    w.write_pair("a_k0", img, lab, {"source": "a", "k": 0, "score": np.float32(0.5)})
    assert w.done("a_k0")
    back = read_image(out / "images/a_k0.png")
    assert np.abs(back - img).max() <= 1 / 127.5 + 1e-6
    assert np.array_equal(np.asarray(Image.open(out / "labels/a_k0.png")), lab)
    w.write_pair("a_k1", *_pair(1), {"source": "a", "k": 1})
    w.close()
    assert not [p for p in out.rglob("*.tmp")]
    w2 = OutputWriter(out, dict(CFG))
    assert w2.done("a_k0") and w2.done("a_k1")
    assert [r["name"] for r in w2.records()] == ["a_k0", "a_k1"]
    assert w2.records()[0]["source"] == "a" and w2.records()[0]["image"] == "images/a_k0.png"
    # a pair whose file vanished is not done (it will be rewritten)
    os.remove(out / "labels/a_k1.png")
    assert not OutputWriter(out, CFG).done("a_k1")


def test_truncated_last_manifest_line(tmp_path):
    out = tmp_path / "out"
    w = OutputWriter(out, CFG)
    w.write_pair("x", *_pair(), {"k": 0})
    w.write_pair("y", *_pair(1), {"k": 1})
    w.close()
    m = out / "manifest.jsonl"
    data = m.read_bytes()
    m.write_bytes(data[:-7])  # crash in the middle of the second line
    w2 = OutputWriter(out, CFG)
    assert w2.done("x") and not w2.done("y")
    w2.write_pair("y", *_pair(1), {"k": 1})
    w2.close()
    lines = m.read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["x", "y"]
    assert OutputWriter(out, CFG).done("y")


def test_run_config_mismatch(tmp_path):
    out = tmp_path / "out"
    OutputWriter(out, CFG).write_pair("x", *_pair(), {})
    with pytest.raises(AugPaintError, match=r"was made with steps=50 but this run has steps=20; use a new --out"):
        OutputWriter(out, {**CFG, "steps": 20})
    with pytest.raises(AugPaintError, match="seed"):
        OutputWriter(out, {**CFG, "seed": 2})


def test_foreign_folder_refused(tmp_path):
    (tmp_path / "out/images").mkdir(parents=True)
    Image.new("L", (2, 2)).save(tmp_path / "out/images/foo.png")
    with pytest.raises(AugPaintError, match="use a new --out"):
        OutputWriter(tmp_path / "out", CFG)


def test_output_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(AugPaintError, match="cannot create output folder") as e:
        OutputWriter(tmp_path / "f" / "out", CFG)
    assert "\n" not in str(e.value)
    with pytest.raises(AugPaintError, match="not a folder"):
        OutputWriter(tmp_path / "f", CFG)


def test_unwritable_output(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        with pytest.raises(AugPaintError, match="not writable"):
            OutputWriter(ro, CFG)
        with pytest.raises(AugPaintError, match="cannot create output folder"):
            OutputWriter(ro / "sub", CFG)
    finally:
        os.chmod(ro, 0o700)
