"""`augpaint-fast bench` end to end at a toy size: JSON records, Markdown report and PNG plot on disk."""
import json

import pytest
from PIL import Image

from augpaint_fast.bench.report import goals, markdown
from augpaint_fast.cli.main import main

REQUIRED = {"engine", "method", "preset", "batch_size", "steps", "seconds_per_batch", "samples_per_s", "unet_calls",
            "gflop_per_call", "fraction_of_peak", "dtype", "cache_interval", "machine", "versions", "dense_peak",
            "timed_calls", "known_psnr_db", "mad_grey_vs_eager", "speedup_vs_eager", "speedup_vs_repaint_latent",
            "speedup_vs_repaint_pixel", "memory_bandwidth_gbs", "command", "executed_gflop_per_batch",
            "achieved_gflops", "dense_equivalent_gflops", "exact", "seconds_q1", "seconds_q3", "provenance",
            "expected_vs_repaint_latent", "speedup_vs_repaint_pixel_published", "timing"}
METHODS = ("eager", "repaint_pixel", "repaint_pixel_published", "augpaint", "repaint_latent")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["bench", "--quick", "--steps", "3", "--batch-sizes", "1", "2", "--configs", "torch-fp32",
            "--jump-length", "1", "--jump-n-sample", "2", "--out", str(out), "--json", str(out / "r" / "x.json")]
    assert main(argv) == 0
    return out, json.loads((out / "r" / "x.json").read_text())


@pytest.mark.slow
def test_records_carry_every_field_and_the_machine(bench_run):
    _, records = bench_run
    assert {(r["method"], r["batch_size"]) for r in records} == {(m, b) for m in METHODS for b in (1, 2)}
    for r in records:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["preset"] == "tiny" and r["steps"] == 3 and r["cache_interval"] == 1
        assert r["samples_per_s"] == pytest.approx(r["batch_size"] / r["seconds_per_batch"])
        assert r["seconds_min"] <= r["seconds_per_batch"] <= r["seconds_max"]
        assert r["dense_peak"]["float32"]["gflops"] > 0 and r["machine"]["cpu_model"]
        assert r["dense_peak"]["float32"]["start_gflops"] > 0 and r["dense_peak"]["float32"]["end_gflops"] > 0
        assert r["provenance"]["load_before"] is None or len(r["provenance"]["load_before"]) == 3
        assert r["versions"]["torch"] and r["command"].startswith("augpaint-fast bench --out ")
        assert " --quick --batch-sizes 1 2 --steps 3 " in r["command"]
        assert 0 < r["fraction_of_peak"] < 5
    by = {(r["method"], r["batch_size"]): r for r in records}
    # 3 steps with jumps 1 x 2: 3 calls + 2 extra calls after 2 forward jumps
    assert by[("repaint_latent", 1)]["unet_calls"] == 5 and by[("repaint_latent", 1)]["forward_jumps"] == 2
    assert by[("augpaint", 1)]["unet_calls"] == 3 and by[("repaint_pixel", 2)]["timed_calls"] == 3
    assert by[("repaint_pixel_published", 1)]["unet_calls"] == 2410  # RePaint's own 250 steps, jumps 10 x 10
    assert by[("repaint_pixel", 1)]["engine"] == "torch"  # on the row's own engine
    aug, eager = by[("augpaint", 2)], by[("eager", 2)]
    assert aug["speedup_vs_eager"] == pytest.approx(aug["samples_per_s"] / eager["samples_per_s"])
    assert aug["gflop_per_call"] == pytest.approx(2 * aug["gflop_per_sample_call"])
    # quality from the shipped weights: the fp32 engine computes what the eager loop computes
    assert aug["mad_grey_vs_eager"] < 0.05 and aug["known_psnr_db"] > 20
    assert eager["mad_grey_vs_eager"] == 0 and by[("repaint_pixel", 1)]["known_psnr_db"] is None


@pytest.mark.slow
def test_report_and_plot_are_written(bench_run):
    out, records = bench_run
    md = (out / "bench.md").read_text()
    assert md.count("\n| ") == 1 + len(records)  # header + one row per record
    assert "Dense peak: float32: measured" in md and "AugPaint >= 4x faster than latent RePaint" in md
    assert "- Commit: `" in md and f"- Machine: {records[0]['machine']['cpu_model']}" in md
    assert "expected from the call counts" in md
    with Image.open(out / "bench.png") as im:
        assert im.format == "PNG" and im.size[0] > 400


@pytest.mark.slow
def test_a_report_without_quality_figures_marks_them_missing(bench_run):
    from augpaint_fast.bench.report import _row

    _, records = bench_run
    quality = ("known_psnr_db", "known_psnr_min_db", "mad_grey_vs_eager", "diversity_grey")
    for r in records:  # what --no-quality records hold: no quality keys at all
        row = _row({k: v for k, v in r.items() if k not in quality})
        assert row.startswith(f"| {r['config']} |") and row.count("|") == _row(r).count("|")


@pytest.mark.slow
def test_goals_name_the_records_they_come_from(bench_run):
    _, records = bench_run
    lines = dict(goals(records))
    assert "torch-fp32, batch" in lines["best exact engine >= 2x the eager baseline"]
    assert lines["H100: paper preset 8 x 50 + decode <= 0.15 s"].startswith("not measured")
    assert markdown(records, {**_summary(records)}).startswith("# augpaint-fast bench")


def _summary(records):
    r = records[0]
    return {"preset": r["preset"], "steps": r["steps"], "machine": r["machine"], "versions": r["versions"],
            "dense_peak": r["dense_peak"], "memory_bandwidth_gbs": r["memory_bandwidth_gbs"], "command": r["command"],
            "repeats": 1, "flops_gflop": {"unet": 1, "pixel_unet": 1, "encoder": 1, "decoder": 1},
            "provenance": r["provenance"],
            "quality_note": "-", "notes": []}


@pytest.mark.slow
def test_report_refuses_records_from_two_machines(bench_run):
    _, records = bench_run
    other = {**records[0], "machine": {**records[0]["machine"], "cpu_model": "another CPU"}}
    with pytest.raises(ValueError, match="cannot share one table"):
        markdown(records + [other], _summary(records))


@pytest.mark.parametrize("argv, needle", [
    (["--configs", "tensorflow"], "unknown bench config"),
    (["--batch-sizes", "0"], "--batch-sizes must be >= 1"),
    (["--configs", "trt-fp16"], "engine trt is unavailable"),
    (["--weights", "/nonexistent/weights"], "does not exist"),
    (["--configs", "torch-fp32", "--combined"], "name the combined rows themselves"),
])
def test_bad_flags_are_one_error_line(tmp_path, capsys, argv, needle):
    assert main(["bench", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("augpaint-fast: error: ") and needle in err[-1]


def test_unwritable_output_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", "--quick", "--out", str(blocker / "sub")]) == 2
    assert "cannot create" in capsys.readouterr().err
