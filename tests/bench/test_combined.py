"""Issue 18's combined configurations in the bench: int8 (and + feature caching), N one-thread workers; which
rows run by default, which with --combined, and how the rows report their speed and quality."""
import multiprocessing

import pytest

from augpaint_fast.bench import suite
from augpaint_fast.bench.configs import CONFIGS, WORKERS_PER_CORE, default_configs, parse_config
from augpaint_fast.bench.report import goals, markdown
from augpaint_fast.bench.workers import WorkerPool
from augpaint_fast.errors import AugPaintError

PEAK = {"gflops": 100.0, "kernel": "matmul", "matmul_gflops": 100.0, "conv_gflops": 90.0}
COMBINED = {"openvino-fp32-workers", "openvino-int8", "openvino-int8-c3", "openvino-bf16-workers", "openvino-int8-workers",
            "openvino-bf16-c3-workers", "openvino-int8-c3-workers"}


def _settings(configs, tmp_path, **kw) -> suite.Settings:
    return suite.Settings(preset="tiny", batch_sizes=(1,), steps=4, repeats=1, repaint_timed_calls=2,
                          jump_length=2, jump_n_sample=2, pixel=False, configs=[parse_config(c) for c in configs],
                          engine_cache=tmp_path / "cache", quality_sources=1, quality_per_source=1, **kw)


def _run(settings):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite, "dense_peak", lambda dtype, device, repeats=3: dict(PEAK))  # 2 s a probe otherwise
        mp.setattr(suite, "memory_bandwidth_gbs", lambda device: 10.0)
        return suite.run_bench(settings, log=lambda line: None)


def test_combined_rows_are_listed_and_opt_in():
    labels = {c.label: c for c in CONFIGS}
    assert COMBINED | {"openvino-bf16-c3"} <= set(labels)
    assert all(labels[name].combined and not labels[name].default for name in COMBINED)
    assert labels["openvino-int8"].dtype == "int8" and labels["openvino-int8-c3"].cache_interval == 3
    assert labels["openvino-fp32-workers"].workers == WORKERS_PER_CORE
    plain, _ = default_configs("cpu")
    assert not {c.label for c in plain} & COMBINED
    # workers=N is the row's processes, not an engine option
    cfg = parse_config("openvino:dtype=int8,workers=2")
    assert (cfg.workers, cfg.options, cfg.dtype) == (2, {"dtype": "int8"}, "int8")
    for bad in ("torch:workers=0", "torch:workers=two"):
        with pytest.raises(AugPaintError, match="workers must be an integer >= 1"):
            parse_config(bad)


def test_combined_adds_the_rows_runnable_here_and_says_why_not_for_the_others():
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    run, skipped = default_configs("cpu", combined=True)
    labels = {c.label for c in run}
    assert {"openvino-int8", "openvino-int8-c3", "openvino-int8-workers"} <= labels
    assert COMBINED <= labels | set(skipped)  # a bf16 row runs on a bf16 CPU, else says why not
    assert all(skipped.values())


def test_without_nncf_int8_rows_are_skipped_with_the_reason(no_nncf, tmp_path):
    pytest.importorskip("openvino")
    run, skipped = default_configs("cpu", combined=True)
    assert not {c.label for c in run if c.dtype == "int8"}
    for label in ("openvino-int8", "openvino-int8-c3", "openvino-int8-workers"):
        assert "nncf" in skipped[label] and "pip install 'augpaint-fast[int8]'" in skipped[label]
    assert "openvino-fp32-workers" in {c.label for c in run}  # --combined's rows that need no NNCF still run
    # named explicitly, an int8 row fails at once with the same line, before anything is measured
    with pytest.raises(AugPaintError, match=r"openvino-int8: .*augpaint-fast\[int8\]"):
        suite.run_bench(_settings(["openvino-int8"], tmp_path), log=lambda line: None)


def test_a_workers_row_is_n_engines_throughput():
    """Each repeat runs one whole batch on every worker at once: seconds per batch = slowest / N."""
    pool = WorkerPool.__new__(WorkerPool)
    pool.workers = 2
    pool._all = lambda what, batch: [(3.0, "cpp"), (4.0, "cpp")]
    method = pool.method(4)
    assert method.run() == {"augpaint": 2.0} and method.info == {"workers": 2, "kernel": "cpp"}


@pytest.mark.slow
def test_workers_row_runs_n_one_thread_engines(tmp_path):
    result = _run(_settings(["torch-fp32", "torch:workers=2"], tmp_path, quality=False))
    rows = {(r["method"], r["config"]): r for r in result.records}
    w, one = rows[("augpaint", "torch:workers=2")], rows[("augpaint", "torch-fp32")]
    assert w["workers"] == 2 and one["workers"] == 1 and w["exact"]
    assert w["samples_per_s"] == pytest.approx(1 / w["seconds_per_batch"]) and w["speedup_vs_eager"] > 0
    assert ("repaint_latent", "torch:workers=2") not in rows and w["speedup_vs_repaint_latent"] is None
    assert "| torch:workers=2 (2 workers) | AugPaint | 1 |" in markdown(result.records, result.summary)


@pytest.mark.slow
def test_int8_row_makes_its_exports_and_measures_quality_against_fp32(tmp_path):
    """(int8 + caching runs the same path with the two caching graphs: tests/engines/test_openvino_int8.py.)
    The checks run in a spawned process: NNCF's quantization left state in the pytest process that made a later
    test's fork (tests/embed/test_aug_dataset.py's DataLoader workers) kill it with a segmentation fault."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    child = multiprocessing.get_context("spawn").Process(target=_int8_row_checks, args=(tmp_path,))
    child.start()
    child.join()
    assert child.exitcode == 0, "the int8 row's checks failed in their own process (its traceback is above)"


def _int8_row_checks(tmp_path):
    result = _run(_settings(["openvino-fp32", "openvino-int8"], tmp_path))
    rows = {(r["method"], r["config"]): r for r in result.records}
    fp32, int8 = rows[("augpaint", "openvino-fp32")], rows[("augpaint", "openvino-int8")]
    # int8 is timed like any exact row (RePaint on its own engine), and scored against the eager fp32 samples
    assert int8["exact"] and int8["speedup_vs_repaint_latent"] is not None and int8["fraction_of_peak"] is None
    assert fp32["mad_grey_vs_eager"] < 0.1 and fp32["within_exact_tolerance"]
    assert int8["mad_grey_vs_eager"] > 0.1  # int8 really ran: not the float32 samples
    assert int8["within_exact_tolerance"] == (
        int8["mad_grey_vs_eager"] <= 3
        and abs(int8["known_psnr_db"] - rows[("eager", "eager")]["known_psnr_db"]) <= 0.5)
    # the random-weight (timed) U-Net and the trained (quality) one
    assert len(list((tmp_path / "cache").glob("unet-int8-*.onnx"))) == 2
    outside = [g for g, _ in goals(result.records) if g.startswith("exact configurations outside")]
    assert bool(outside) == (not int8["within_exact_tolerance"])
    # a second run finds both cached: nothing is recorded or quantized again
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*-int8-*")}
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite, "dense_peak", lambda dtype, device, repeats=3: dict(PEAK))
        mp.setattr(suite, "memory_bandwidth_gbs", lambda device: 10.0)
        suite.run_bench(_settings(["openvino-int8"], tmp_path), log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert sum("int8: cached" in line for line in lines) == 2 and not any("calibrating" in line for line in lines)
