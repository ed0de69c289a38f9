"""Pairs from real and generated folders: manifest order, pairs in flight and torn manifests."""
import numpy as np
import pytest

from augpaint_fast.data import OutputWriter
from augpaint_fast.data.pairs import load_pairs, open_pairs
from augpaint_fast.errors import AugPaintError


def _write(out, names):
    lab = np.zeros((16, 16), np.int64)
    lab[4:9, 3:7] = 2
    with OutputWriter(out, {"t": 1}) as w:
        for i, name in enumerate(names):
            w.write_pair(name, np.full((3, 16, 16), -0.5 + 0.1 * i, np.float32), lab, {"source": "s", "k": i})


def test_generated_folder_reads_its_manifest(tmp_path):
    out = tmp_path / "g"
    _write(out, ["b", "a", "c"])
    (out / "labels" / "c.png").unlink()  # pair in flight: its label never landed
    (out / "images" / "z.png").write_bytes((out / "images" / "a.png").read_bytes())  # not in the manifest
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"name": "d", "ima')  # torn last line (crash mid-append)
    folder = open_pairs(out)
    assert [it.id for it in folder.items] == ["b", "a"] and folder.records["a"]["k"] == 1
    pairs = load_pairs([folder], 8, progress=False)
    assert pairs.images.shape == (2, 3, 8, 8) and pairs.labels.shape == (2, 8, 8)
    assert set(np.unique(pairs.labels)) == {0, 2} and pairs.max_class == 2 and pairs.empty_labels == 0
    assert pairs.images[0].mean() == pytest.approx(-0.5, abs=0.01)


def test_real_folder_and_bad_manifests(phantom_data, tmp_path):
    folder = open_pairs(phantom_data)
    assert len(folder.items) == 3 and folder.records == {}
    out = tmp_path / "g"
    _write(out, ["a"])
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('["not", "a", "record"]\n')
    with pytest.raises(AugPaintError, match="line 2 is not a pair record"):
        open_pairs(out)
    (out / "manifest.jsonl").write_text("")
    with pytest.raises(AugPaintError, match="lists no pair"):
        open_pairs(out)
