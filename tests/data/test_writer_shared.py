"""OutputWriter beyond one owner: pre-encoded pairs, several processes appending to one shared folder, temp files
of killed writes."""
import json
import multiprocessing

import numpy as np

from augpaint_fast.data import OutputWriter
from augpaint_fast.data.imageio import encode_image_png, encode_label_png

CFG = {"seed": 1, "weights_sha256": "cd" * 32, "steps": 3}


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32), rng.integers(0, 3, (8, 8))


def test_write_encoded_writes_the_bytes_write_pair_would(tmp_path):
    img, lab = _pair()
    OutputWriter(tmp_path / "a", CFG).write_pair("p", img, lab, {"k": 0})
    OutputWriter(tmp_path / "b", CFG).write_encoded("p", encode_image_png(img), encode_label_png(lab), {"k": 0})
    for rel in ("images/p.png", "labels/p.png", "manifest.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def _append_many(out, prefix, count, barrier):
    w = OutputWriter(out, CFG, shared=True)
    barrier.wait(60)
    for i in range(count):
        w.write_pair(f"{prefix}{i}", *_pair(i), {"i": i, "pad": "x" * 300})


def test_shared_writers_in_two_processes_append_whole_lines_and_see_each_other(tmp_path):
    out = tmp_path / "out"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_append_many, args=(out, prefix, 40, barrier)) for prefix in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    names = [json.loads(line)["name"] for line in lines]  # every line is one whole record
    assert sorted(names) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)])
    w = OutputWriter(out, CFG, shared=True)
    assert w.done("a39") and w.done("b0")


def test_refresh_takes_in_other_writers_lines_and_drops_a_torn_tail(tmp_path):
    out = tmp_path / "out"
    first, second = OutputWriter(out, CFG, shared=True), OutputWriter(out, CFG, shared=True)
    second.write_pair("x", *_pair(), {})
    assert not first.done("x")
    first.refresh()
    assert first.done("x")
    with open(out / "manifest.jsonl", "ab") as fh:  # a writer killed half-way through its line
        fh.write(b'{"name": "y", "ima')
    first.write_pair("z", *_pair(1), {})
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["x", "z"]
    second.refresh()
    assert second.done("z") and not second.done("y")


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    out = tmp_path / "out"
    w = OutputWriter(out, CFG, shared=True)
    for name in (".a_0.png.123.tmp", ".b_0.png.456.tmp"):
        (out / "images" / name).write_bytes(b"partial")
    (out / ".preview.png.789.tmp").write_bytes(b"partial")
    w.discard_partial(["a_0"])  # a shared folder: only the pairs this process holds
    assert [p.name for p in (out / "images").glob(".*.tmp")] == [".b_0.png.456.tmp"]
    OutputWriter(out, CFG)  # one owner: everything left by killed writes goes
    assert not list(out.rglob(".*.tmp"))
