"""`make gpu-check` (benchmarks/gpu_check.py) proven on a CPU: the dry run writes the report layout with every GPU
row "not run" and why, each step's outcome is what its command did, the bench rows' flags are ones
`augpaint-fast bench` accepts, and the steps' timeouts fit the GPU quarter hour."""
from __future__ import annotations

import json
import re
import sys

import pytest

from benchmarks import gpu_check

STEP_NAMES = ["build", "tests", "bench-tiny", "bench-paper"]


def test_dry_run_writes_the_report_layout_with_every_row_not_run(tmp_path):
    report = gpu_check.run(tmp_path, dry_run=True)
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["dry_run"] is True and [r["name"] for r in saved["rows"]] == STEP_NAMES
    for row in saved["rows"]:
        assert row["status"] == "not run" and row["reason"].startswith("dry run"), row
        assert row["seconds"] is None and row["log"] is None and row["command"]
    assert re.fullmatch(r"[0-9a-f]{40}( \+ uncommitted changes)?|unknown .*", saved["commit"])
    assert saved["machine"]["cpu"] and "torch" in saved["machine"]["versions"]
    md = (tmp_path / "gpu_check.md").read_text()
    assert md.startswith("# GPU check (dry run)")
    for line in (f"- commit: {saved['commit']}", "- machine: ", "- GPU: ", "- rows that ran: none"):
        assert line in md, line
    for name in STEP_NAMES:
        assert re.search(rf"^\| {name} \|.*\| not run \| dry run", md, re.M), name
    assert not (tmp_path / "logs").exists()  # nothing executed


def test_bench_rows_ask_bench_for_the_gpu_configurations():
    """Each bench row's flags parse with `augpaint-fast bench`'s own parser, into the run the issue asks for."""
    from augpaint_fast.cli.bench import BENCH, settings_from_args
    from augpaint_fast.cli.command import Parser

    parser = Parser(prog="augpaint-fast bench")
    BENCH.add_arguments(parser)
    for preset in gpu_check.BENCH_PRESETS:
        s = settings_from_args(parser.parse_args(list(gpu_check.bench_flags(preset))))
        assert (s.device, s.preset, s.batch_sizes) == ("cuda", preset, (1, 8))
        options = [c.options for c in s.configs]
        for dtype in ("float16", "bfloat16"):
            for graphs in (False, True):
                assert any(o.get("dtype") == dtype and bool(o.get("cuda_graphs")) == graphs for o in options)


def _step(name, code, **kw):
    kw.setdefault("needs_cuda", False)
    return gpu_check.Step(name, "checks", (sys.executable, "-c", code), kw.pop("timeout_s", 60), **kw)


def test_each_step_reports_what_its_command_did(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    cases = [
        (_step("env", "import os, sys; sys.exit('TRITON_INTERPRET' in os.environ)",
               unset_env=("TRITON_INTERPRET",)), "passed", ""),
        (_step("fails", "import sys; print('boom'); sys.exit(3)"), "failed", "exit status 3"),
        (_step("hangs", "import time; time.sleep(30)", timeout_s=1), "timed out", "killed after 1 s"),
        (_step("needs", "pass", requires=("no_such_module_here",)), "skipped", "no_such_module_here"),
        (_step("gpu", "pass", needs_cuda=True), "not run", "no GPU in this test"),
        (_step("nothing", "pass", produces="no/such/*.so"), "failed", "exit status 0 but no no/such/*.so"),
    ]
    for step, status, reason in cases:
        row = gpu_check.run_step(step, tmp_path, dry_run=False, no_cuda="no GPU in this test")
        assert row.status == status and reason in row.reason, row
        ran = status in ("passed", "failed", "timed out")
        assert (row.log == f"logs/{step.name}.log") == ran and (row.seconds is not None) == ran, row
    assert (tmp_path / "logs" / "fails.log").read_text() == "boom\n"


def test_every_gpu_test_is_where_the_check_collects():
    """The tests step collects only GPU_TEST_PATHS: a module with a gpu mark elsewhere would be left out."""
    root = gpu_check.ROOT
    marked = {p.relative_to(root).as_posix() for p in (root / "tests").rglob("test_*.py")
              if re.search(r"pytest\.mark\.gpu\b", p.read_text(encoding="utf-8"))}
    assert marked and all(any(f == g or f.startswith(g + "/") for g in gpu_check.GPU_TEST_PATHS) for f in marked), \
        sorted(marked)
    assert all((root / g).exists() for g in gpu_check.GPU_TEST_PATHS)


def test_step_timeouts_fit_the_gpu_quarter_hour():
    assert gpu_check.BUDGET_S == sum(s.timeout_s for s in gpu_check.steps(gpu_check.ROOT))
    assert gpu_check.BUDGET_S < 8 * 60


@pytest.mark.slow
def test_a_bench_row_writes_json_and_markdown(tmp_path):
    """The bench row's runner end to end on the CPU at the smallest size: the files the report links to."""
    gpu_check.bench_to(tmp_path, ["--quick", "--device", "cpu", "--batch-sizes", "1", "--steps", "2",
                                  "--configs", "torch-fp32", "--no-pixel"])
    records = json.loads((tmp_path / "bench.json").read_text())
    assert {(r["method"], r["batch_size"]) for r in records} == {("eager", 1), ("augpaint", 1), ("repaint_latent", 1)}
    assert "| torch-fp32 | AugPaint | 1 |" in (tmp_path / "bench.md").read_text()
