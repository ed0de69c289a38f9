"""`make bench-compare` (benchmarks/compare.py): ratios between configurations of one run against the committed
baseline, with a stated threshold; absolute times do not matter."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import compare

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline" / "cpu.json"


def _run(**minimum_seconds) -> dict:
    return {"benchmarks": [{"name": name, "stats": {"min": s, "median": 2 * s}} for name, s in minimum_seconds.items()]}


def _times(scale=1.0, cpp=1.0):
    return {"test_fused_step[ref-small]": 8e-3 * scale, "test_fused_step[cpp-small]": 1e-3 * scale * cpp,
            "test_fused_step[torch_pregen-small]": 2e-3 * scale}


def _ratio_rows(rows):
    return {r["ratio"]: r for r in rows}


def test_a_uniformly_slower_machine_passes():
    rows, failures = compare.compare(_run(**_times()), _run(**_times(scale=3.0)))
    assert failures == []
    compared = [r for r in rows if r["change"] is not None]
    assert len(compared) == 2 and all(abs(r["change"] - 1) < 1e-9 and r["status"] == "ok" for r in compared)


def test_a_ratio_past_the_threshold_fails_naming_it(tmp_path, capsys):
    saved, fresh = tmp_path / "saved.json", tmp_path / "fresh.json"
    saved.write_text(json.dumps(_run(**_times())))
    fresh.write_text(json.dumps(_run(**_times(cpp=1.6))))  # the C++ step 1.6x slower, the others not
    assert compare.main([str(saved), str(fresh), "--threshold", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "fused step small: reference / C++: 5.000 now vs 8.000 saved, x0.62, past the threshold" in out
    assert "fused step small: C++ / unfused torch (noise pre-drawn): 0.800 now vs 0.500 saved, x1.60" in out
    assert compare.main([str(saved), str(fresh), "--threshold", "0.7"]) == 0  # within x0.59 to x1.70


def test_a_benchmark_missing_from_the_fresh_run_fails_and_one_missing_from_the_saved_run_is_not_compared():
    times = _times()
    fresh = dict(times, **{"test_unet_call[torch-fp32]": 0.3, "test_unet_call[onnx-fp32]": 0.1})
    del fresh["test_fused_step[ref-small]"]
    rows, failures = compare.compare(_run(**times), _run(**fresh))
    assert failures == ["fused step small: reference / C++: not measured in the fresh run (saved 8.000); "
                        "benchmarks test_fused_step[ref-small] and test_fused_step[cpp-small] needed"]
    assert _ratio_rows(rows)["U-Net call: onnx-fp32 / torch-fp32"]["status"] == "not compared (not in the saved run)"


def test_the_committed_baseline_is_labelled_and_holds_the_ratios():
    run = json.loads(BASELINE.read_text())
    note = run["machine_info"]["note"]
    assert "idle" in note or "busy" in note, note  # says where it was recorded and under what load
    held = compare.ratios(run)
    for name in ("fused step small: reference / C++", "fused step paper: reference / C++",
                 "U-Net call: onnx-fp32 / torch-fp32"):
        assert held[name] > 0, name
