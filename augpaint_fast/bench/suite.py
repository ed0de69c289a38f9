"""The whole benchmark in one run: the machine's limits, every method x configuration x batch size, quality.

Order: dense peak per dtype (the start probe) and copy bandwidth; the eager loop per batch size; per engine
configuration and batch size, AugPaint, latent RePaint and pixel RePaint (both on the configuration's own
engine) with their repeats interleaved; the dense peak again (the end probe); then quality on trained weights.
Each measurement becomes one record (a dict, see ``record``) carrying the run's provenance
(``machine.provenance``); peaks, fractions of peak and ratios are filled in once all are known. Ratios are at
equal batch size: vs the eager loop, and for exact configurations only (cache_interval 1) vs latent RePaint,
pixel RePaint and pixel RePaint as published on the same configuration (the torch-fp32 one for the eager loop).
A cached configuration's RePaint is never timed: RePaint over a cached U-Net is not RePaint. A workers row
(``BenchConfig.workers``, ``bench.workers``) times AugPaint only (N one-thread engines at once); an int8 row
first makes its int8 exports (``bench.int8``).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..engines import create_engine, engine_status
from ..engines.torch_engine import DTYPES
from ..errors import AugPaintError
from ..host import resolve_device
from ..progress import progress
from .repaint import repaint_schedule
from ..core.schedule import ddim_schedule
from . import runner
from .configs import RUNTIME_OPTIONS, WORKERS_PER_CORE, BenchConfig, default_configs, int8_missing
from .machine import (CpuMeter, Timing, dense_peak, load_average, machine_info, memory_bandwidth_gbs, provenance,
                      theoretical_peak, versions)
from .int8 import prepare_int8
from .quality_set import EXACT_MAD_GREY, EXACT_PSNR_DB, QualitySet, within_exact_tolerance

BASELINE = "torch-fp32"  # the configuration whose RePaint rows the eager loop's ratios use
PUBLISHED_REPAINT = (250, 10, 10)  # RePaint's own setting: steps, jump length, jump n_sample (2,410 U-Net calls)


@dataclass
class Settings:
    """One bench run (the CLI's flags)."""

    preset: str = "small"
    batch_sizes: tuple[int, ...] = (1, 4)
    steps: int = 50
    repeats: int = 5
    timed_steps: int | None = None  # AugPaint/eager calls timed per repeat (None: all)
    repaint_timed_calls: int = 30  # RePaint reverse steps (and jumps) timed, spread over the run and the repeats
    peak_repeats: int = 3  # timed calls of each dense-peak kernel per probe
    jump_length: int = 10
    jump_n_sample: int = 5
    device: str = "cpu"
    threads: int | None = None
    configs: list[BenchConfig] | None = None  # None: the defaults available here
    combined: bool = False  # with the defaults, also the combined configurations (int8, workers, ...)
    engine_cache: Path | None = None
    pixel: bool = True
    quality: bool = True
    weights: Path | None = None
    quality_sources: int = 4
    quality_per_source: int = 2
    seed: int = 0
    command: str = "augpaint-fast bench"

    def check(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise AugPaintError(f"--batch-sizes must be >= 1, got {list(self.batch_sizes)}")
        for name in ("steps", "repeats", "repaint_timed_calls", "quality_sources", "quality_per_source",
                     "jump_length", "jump_n_sample"):
            if getattr(self, name) < 1:
                raise AugPaintError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("timed_steps", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise AugPaintError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.combined and self.configs:
            raise AugPaintError("--combined adds rows to the default configurations; with --configs, name the "
                                "combined rows themselves (e.g. openvino-int8 openvino-int8-c3)")
        resolve_device(self.device)  # a device that is not there fails here, before any work


@dataclass
class Result:
    records: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _engine_options(cfg: BenchConfig, s: Settings) -> dict:
    """The engine's constructor options: the row's, the device, and the bench's cache folder and threads (one
    thread for each engine of a workers row)."""
    threads = 1 if cfg.workers else s.threads
    runtime = {"cache_dir": str(s.engine_cache) if s.engine_cache else None, "threads": threads}
    extra = {k: runtime[k] for k in RUNTIME_OPTIONS.get(cfg.engine, ()) if runtime[k] is not None}
    return {**cfg.options, "device": s.device, **extra}


def worker_count(cfg: BenchConfig, device: str) -> int:
    """The row's engine processes: its ``workers``, or one per physical core (``job.workers.default_workers``)."""
    from ..job.workers import default_workers

    return default_workers(device) if cfg.workers == WORKERS_PER_CORE else cfg.workers


def _measure_workers(cfg: BenchConfig, options: dict, s: Settings, timed: int, record, bar) -> None:
    """Time a workers row at every batch size (``bench.workers``: AugPaint only, no RePaint) and record it."""
    from .workers import WorkerPool

    n = worker_count(cfg, s.device)
    bar.set_postfix_str(f"{cfg.label}: starting {n} workers")
    with WorkerPool(n, cfg.engine, options, s.preset, s.seed, s.steps, timed) as pool:
        for b in s.batch_sizes:
            bar.set_postfix_str(f"{cfg.label} B={b}")
            method = pool.method(b)
            timing = runner.interleave([method], s.repeats)["augpaint"]
            record("augpaint", cfg.label, cfg.engine, cfg.options, cfg.dtype, b, timing, cfg.cache_interval,
                   method.info["kernel"], workers=n)
            bar.update()


def _timing_calibration(work: runner.Workload, s: Settings):
    """The int8 calibration of the timed random-weight models: their own sampling runs over the bench's inputs."""
    from .int8 import batch_calibration
    from ..job.calibrate import CALIBRATION_IMAGES

    x = runner.Inputs.make(work, CALIBRATION_IMAGES, torch.device("cpu"))
    return batch_calibration(work.autoencoder, work.unet, x.x, x.mask, x.uids, s.seed, s.steps,
                             f"bench inputs, {s.preset} random weights (seed {s.seed})")


def run_bench(s: Settings, log: Callable[[str], None] = print) -> Result:
    """Measure everything ``s`` asks for; ``log`` gets one line per finished measurement."""
    s.check()
    load_before, meter = load_average(), CpuMeter()
    device = torch.device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    explicit = s.configs is not None
    if explicit:
        configs, skipped = list(s.configs), {}
        for cfg in configs:
            missing = engine_status().get(cfg.engine) or (int8_missing() if cfg.dtype == "int8" else None)
            if missing:
                raise AugPaintError(f"--configs {cfg.label}: engine {cfg.engine} is unavailable: {missing}")
    else:
        configs, skipped = default_configs(device.type, s.combined)
    notes = [f"{label} not measured: {why}" for label, why in skipped.items()]
    quality_set = _quality_set(s) if s.quality else None  # a bad --weights fails now, not after the timing

    machine, vers = machine_info(device), versions()
    dtypes = ["float32"] + sorted({c.dtype for c in configs if c.dtype in DTYPES} - {"float32"})  # int8: no probe
    start = _probe_peaks(dtypes, device, s.peak_repeats, "start", log)
    bandwidth = memory_bandwidth_gbs(device)
    log(f"copy bandwidth: {bandwidth:.1f} GB/s")

    work = runner.Workload.build(s.preset, s.seed, pixel=s.pixel)
    ddim = ddim_schedule(s.steps, 1.0)
    rp = repaint_schedule(s.steps, s.jump_length, s.jump_n_sample)
    rp_paper = repaint_schedule(*PUBLISHED_REPAINT)
    timed = min(s.timed_steps or s.steps, s.steps)
    rp_timed = min(s.repaint_timed_calls, rp.unet_calls)
    fl = work.flops
    schedules = {"repaint_latent": rp, "repaint_pixel": rp, "repaint_pixel_published": rp_paper}
    common = {"preset": s.preset, "steps": s.steps, "device": str(device), "machine": machine, "versions": vers,
              "memory_bandwidth_gbs": round(bandwidth, 2), "command": s.command,
              "expected_vs_repaint_latent": _expected_ratio(fl, s.steps, rp),
              "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    records: list[dict] = []

    def record(method: str, label: str, engine: str, options: dict, dtype: str, batch: int, timing: Timing | None,
               cache_interval: int = 1, kernel: str = "unfused (PyTorch ops)", not_run: str | None = None,
               workers: int = 1) -> None:
        sched = schedules.get(method)
        calls = sched.unet_calls if sched else s.steps
        per_sample = flops_per_sample(method, fl, calls, cache_interval)
        unet_flops = fl["pixel_unet"] if method.startswith("repaint_pixel") else fl["unet"]
        rec = {"config": label, "engine": engine, "options": options, "method": method, "batch_size": batch,
               "unet_calls": calls, "forward_jumps": sched.forward_jumps if sched else 0,
               "repaint_jumps": {"steps": sched.steps, "jump_length": sched.jump_length,
                                 "jump_n_sample": sched.jump_n_sample} if sched else None,
               "timed_calls": min(rp_timed, calls) if sched else timed,
               "timing": _timing_of(method, timed, s.steps, rp_timed, rp, calls),
               "gflop_per_call": batch * unet_flops / 1e9, "gflop_per_sample_call": unet_flops / 1e9,
               "gflop_per_batch": batch * per_sample["dense"] / 1e9,
               "executed_gflop_per_batch": batch * per_sample["executed"] / 1e9,
               "dtype": dtype, "cache_interval": cache_interval, "exact": cache_interval == 1, "workers": workers,
               "noise": "philox" if method == "augpaint" else "torch.randn", "step_kernel": kernel,
               "not_run": not_run, **common, **speed(timing, batch, per_sample)}
        records.append(rec)
        if timing is None:
            log(f"{label:>18} {method:>24} B={batch:<3} not run: {not_run}")
            return
        log(f"{label:>18} {method:>24} B={batch:<3} {timing.median:8.3f} s/batch (IQR {timing.q1:.3f}-"
            f"{timing.q3:.3f})  {rec['samples_per_s']:8.3f} samples/s  {rec['achieved_gflops']:7.1f} executed "
            f"GFLOP/s  [{rec['timing']}]")

    pixel_keys = ["repaint_pixel", "repaint_pixel_published"] if s.pixel else []
    tasks = len(s.batch_sizes) * (1 + len(configs))
    bar = progress(total=tasks, desc="bench", unit="run")
    inputs = {b: runner.Inputs.make(work, b, device) for b in s.batch_sizes}
    for b in s.batch_sizes:
        bar.set_postfix_str(f"eager B={b}")
        timing = runner.interleave([runner.eager_method(work, inputs[b], ddim, timed, device)], s.repeats)
        record("eager", "eager", "torch", {}, "float32", b, timing["eager"])
        bar.update()
    measured = []
    calibration = _timing_calibration(work, s) if any(c.dtype == "int8" for c in configs) else None
    for cfg in configs:
        bar.set_postfix_str(f"{cfg.label}: building the engine")
        options = _engine_options(cfg, s)
        try:
            if cfg.dtype == "int8":
                prepare_int8(work.autoencoder, work.unet, options, calibration, log)
            if cfg.workers:
                _measure_workers(cfg, options, s, timed, record, bar)
            else:
                engine = create_engine(cfg.engine, work.autoencoder, work.unet, **options)
        except AugPaintError as exc:
            if explicit:
                raise
            notes.append(f"{cfg.label} not measured: {exc}")
            bar.update(len(s.batch_sizes))
            continue
        measured.append(cfg)
        if cfg.workers:
            continue
        exact = cfg.cache_interval == 1
        pixel, pixel_why = _pixel_denoiser(cfg, options, work) if pixel_keys and exact else (None, None)
        for b in s.batch_sizes:
            bar.set_postfix_str(f"{cfg.label} B={b}")
            methods = [runner.augpaint_method(engine, work, inputs[b], ddim, timed, s.seed)]
            if exact:  # RePaint is exact: never timed over a cached engine
                methods.append(runner.repaint_latent_method(engine, work, inputs[b], rp, rp_timed, s.repeats))
            if pixel is not None:
                methods.append(runner.repaint_pixel_method(pixel, inputs[b], {k: schedules[k] for k in pixel_keys},
                                                           rp_timed, s.repeats, device))
            timings = runner.interleave(methods, s.repeats)
            record("augpaint", cfg.label, cfg.engine, cfg.options, cfg.dtype, b, timings["augpaint"],
                   cfg.cache_interval, methods[0].info["kernel"])
            for method in ["repaint_latent"] * exact + pixel_keys * exact:
                record(method, cfg.label, cfg.engine, cfg.options, cfg.dtype, b, timings.get(method),
                       not_run=None if method in timings else pixel_why)
            bar.update()
    bar.close()
    end = _probe_peaks(dtypes, device, s.peak_repeats, "end", log)
    cores = min(torch.get_num_threads(), machine["physical_cores"])
    peaks = {dt: peak_summary(start[dt], end[dt], theoretical_peak(dt, cores) if device.type == "cpu" else None)
             for dt in dtypes}
    prov = provenance(load_before, load_average(), meter.other())
    for r in records:
        r.update(dense_peak=peaks, provenance=prov, **fractions_of_peak(r, peaks.get(r["dtype"])))
    _fill_ratios(records)

    quality_note = "not measured (--no-quality)"
    if quality_set is not None:
        quality_note = _quality(quality_set, records, measured, s, ddim, rp, device, notes, log)
    notes += _timing_notes(s, timed, rp_timed, rp, rp_paper, fl)
    if prov["busy_machine"]:
        why = (f"other processes used {prov['other_cpus_during']:.2f} CPUs during the run"
               if prov["other_cpus_during"] is not None else f"load average {prov['load_before'][0]} before the run")
        notes.insert(0, f"BUSY MACHINE: {why} on {prov['threads']['logical_cpus']} CPUs; these figures are not "
                        f"results")
    summary = {**{k: common[k] for k in ("preset", "steps", "machine", "versions", "memory_bandwidth_gbs",
                                          "command")},
               "dense_peak": peaks, "provenance": prov,
               "repeats": s.repeats, "flops_gflop": {k: v / 1e9 for k, v in fl.items()},
               "flops_per_sample_augpaint": flops_per_sample("augpaint", fl, s.steps, 1)["dense"],
               "expected_vs_repaint_latent": common["expected_vs_repaint_latent"], "params": work.params,
               "notes": notes, "quality_note": quality_note}
    return Result(records, summary)


def _probe_peaks(dtypes: list[str], device: torch.device, repeats: int, when: str, log) -> dict[str, dict]:
    peaks = {}
    for dt in dtypes:
        peaks[dt] = dense_peak(DTYPES[dt], device, repeats)
        log(f"dense peak {dt} ({when}): {peaks[dt]['gflops']:.1f} GFLOP/s ({peaks[dt]['kernel']}; matmul "
            f"{peaks[dt]['matmul_gflops']:.1f}, conv3x3 {peaks[dt]['conv_gflops']:.1f})")
    return peaks


def peak_summary(start: dict, end: dict, theoretical: dict | None) -> dict:
    """The peak of one dtype a record divides by: "gflops", the best of the probes at the start and the end of
    the run (the kernel that gave it, and its matmul and conv figures), both probes, their spread (percent of
    the best) and the theoretical peak (None off the CPU)."""
    best = max(start, end, key=lambda p: p["gflops"])
    return {**best, "start_gflops": start["gflops"], "end_gflops": end["gflops"],
            "spread_pct": 100 * abs(start["gflops"] - end["gflops"]) / best["gflops"], "theoretical": theoretical}


def flops_per_sample(method: str, fl: dict, calls: int, cache_interval: int) -> dict:
    """{"dense": every call a full U-Net call, "executed": as run (shallow calls of a cached configuration at
    their own cost)} FLOPs per sample of ``method`` over ``calls`` U-Net calls. The one work accounting: the
    micro-benchmarks (benchmarks/bench_methods.py) count with it too."""
    if method.startswith("repaint_pixel"):
        dense = executed = calls * fl["pixel_unet"]
    else:
        codec = fl["encoder"] + fl["decoder"]
        dense, executed = codec + calls * fl["unet"], codec + runner.executed_unet_flops(fl, calls, cache_interval)
    return {"dense": dense, "executed": executed}


def _expected_ratio(fl: dict, steps: int, rp) -> float:
    """Latent RePaint's counted FLOPs over AugPaint's on the same U-Net: the speed-up the call counts predict
    (4.00 on ``small``, 3.91 on ``paper`` at 50 steps, jumps 10 x 5)."""
    return flops_per_sample("repaint_latent", fl, rp.unet_calls, 1)["dense"] / \
        flops_per_sample("augpaint", fl, steps, 1)["dense"]


def speed(timing: Timing | None, batch: int, per_sample: dict) -> dict:
    """Seconds (median, quartiles, range), samples/s (dense-equivalent: what the user gets), executed GFLOP/s
    (what the hardware did: the headline) and dense-equivalent GFLOP/s (what a cached configuration's samples
    would cost without caching) of one record; all None when it did not run."""
    keys = ("seconds_per_batch", "seconds_q1", "seconds_q3", "seconds_min", "seconds_max", "repeats",
            "samples_per_s", "achieved_gflops", "dense_equivalent_gflops")
    if timing is None:
        return dict.fromkeys(keys)
    per_s = batch / timing.median / 1e9
    return dict(zip(keys, (timing.median, timing.q1, timing.q3, timing.min, timing.max, timing.repeats,
                           batch / timing.median, per_s * per_sample["executed"], per_s * per_sample["dense"])))


def fractions_of_peak(record: dict, peak: dict | None) -> dict:
    """The record's executed GFLOP/s as a fraction of the measured peak (``peak_summary``) and of the
    theoretical one (None where unknown); both None when it did not run or its dtype has no peak probe
    (``peak`` None: int8)."""
    if record["achieved_gflops"] is None or peak is None:
        return {"fraction_of_peak": None, "fraction_of_theoretical_peak": None}
    theoretical = (peak["theoretical"] or {}).get("gflops")
    return {"fraction_of_peak": record["achieved_gflops"] / peak["gflops"],
            "fraction_of_theoretical_peak": record["achieved_gflops"] / theoretical if theoretical else None}


def _pixel_denoiser(cfg: BenchConfig, options: dict, work: runner.Workload):
    """(the pixel U-Net's denoiser on ``cfg``'s engine, None) or (None, why the engine cannot run it)."""
    try:
        return create_engine(cfg.engine, work.autoencoder, work.pixel_unet, **options).denoiser, None
    except (AugPaintError, RuntimeError, ValueError) as exc:
        return None, f"{cfg.engine} cannot run the pixel U-Net ({str(exc).splitlines()[0] if str(exc) else exc!r})"


def _timing_of(method: str, timed: int, steps: int, rp_timed: int, rp, calls: int) -> str:
    """How a record's seconds were obtained, in words."""
    if method in ("augpaint", "eager"):
        return "whole run" if timed >= steps else f"{timed} of {steps} calls timed, scaled"
    if method == "repaint_pixel_published":
        timed_50 = "whole run" if rp_timed >= rp.unet_calls else f"{rp_timed} spread calls + jumps"
        return f"per-transition seconds of the {rp.steps}-step run's {timed_50}, scaled to {calls} calls"
    return "whole run" if rp_timed >= calls else (f"{rp_timed} calls + {rp_timed} jumps spread over the run and "
                                                  f"the repeats, scaled")


def _fill_ratios(records: list[dict]) -> None:
    """Speed-ups at equal batch size: vs the eager loop (every record), and, for exact records only, vs RePaint
    on the same configuration (the torch-fp32 one for the eager loop, which has none)."""
    index = {(r["method"], r["config"], r["batch_size"]): r for r in records}
    for r in records:
        b = r["batch_size"]
        config = BASELINE if r["config"] == "eager" else r["config"]
        refs = {"speedup_vs_eager": index.get(("eager", "eager", b))}
        for method in ("repaint_latent", "repaint_pixel", "repaint_pixel_published"):
            refs[f"speedup_vs_{method}"] = index.get((method, config, b)) if r["exact"] else None
        for key, ref in refs.items():
            ok = ref is not None and ref["samples_per_s"] and r["samples_per_s"]
            r[key] = r["samples_per_s"] / ref["samples_per_s"] if ok else None


def _quality_set(s: Settings) -> QualitySet:
    from ..assets import SHIPPED_WEIGHTS

    weights = Path(s.weights) if s.weights else SHIPPED_WEIGHTS
    return QualitySet.load(weights, s.quality_sources, s.quality_per_source, seed=s.seed)


def _quality(qs: QualitySet, records, configs, s: Settings, ddim, rp, device, notes: list[str], log) -> str:
    """Score the eager reference, every measured configuration and latent RePaint; fill the records."""
    weights = qs.weights
    bar = progress(total=len(configs) + 2, desc="quality", unit="run")
    bar.set_postfix_str("eager fp32 reference")
    reference = qs.eager(ddim, device)
    scores = {("eager", "eager"): {**qs.scores(reference, reference), "quality_of": "eager float32 (reference)"}}
    bar.update()
    calibration = None
    for cfg in configs:
        bar.set_postfix_str(cfg.label)
        options = _engine_options(cfg, s)
        if cfg.dtype == "int8":
            calibration = calibration or _quality_calibration(qs, s)
            prepare_int8(qs.autoencoder, qs.unet, options, calibration, log)
        images = qs.augpaint(cfg, options, ddim)
        of = f"{cfg.label} (one of its one-thread engines: the workers write the same samples)" if cfg.workers \
            else cfg.label
        q = qs.scores(images, reference)
        q["within_exact_tolerance"] = within_exact_tolerance(q, scores[("eager", "eager")])
        scores[("augpaint", cfg.label)] = {**q, "quality_of": of}
        bar.update()
    bar.set_postfix_str("latent RePaint")
    rp_scores = {**qs.scores(qs.repaint_latent(rp, device), None),
                 "quality_of": "latent RePaint, plain float32 U-Net"}
    bar.update()
    bar.close()
    empty = {"known_psnr_db": None, "known_psnr_min_db": None, "mad_grey_vs_eager": None, "quality_samples": 0,
             "diversity_grey": None, "quality_of": None, "within_exact_tolerance": None}
    for r in records:
        key = (r["method"], r["config"])
        q = rp_scores if r["method"] == "repaint_latent" else scores.get(key, empty)
        r.update(q, quality_weights=str(weights))
    for (method, label), q in list(scores.items()) + [(("repaint_latent", "*"), rp_scores)]:
        log(f"quality {label:>18} {method:>15}: known-region PSNR {q['known_psnr_db']:.2f} dB "
            f"(min {q['known_psnr_min_db']:.2f}), MAD vs eager fp32 "
            f"{'-' if q['mad_grey_vs_eager'] is None else format(q['mad_grey_vs_eager'], '.3f')} grey levels, "
            f"outside-box diversity {'-' if q['diversity_grey'] is None else format(q['diversity_grey'], '.2f')}")
    notes.append("pixel RePaint has no quality figures: no trained pixel-space weights exist (timing only)")
    return (f"trained weights `{weights}`, {qs.x.shape[0]} samples ({s.quality_sources} phantom sources x "
            f"{s.quality_per_source}, box masks, seed {s.seed}, {s.steps} steps); known-region PSNR against the "
            f"source, MAD in grey levels against the eager float32 loop with the same counter-based noise; exact "
            f"tolerance: PSNR within {EXACT_PSNR_DB} dB of the loop's, MAD <= {EXACT_MAD_GREY:g} grey levels")


def _quality_calibration(qs: QualitySet, s: Settings):
    """The int8 calibration of the trained weights: their sampling runs over phantom sources that the quality
    runs do not score."""
    from .int8 import CALIBRATION_PHANTOM_SEED, batch_calibration
    from ..job.calibrate import CALIBRATION_IMAGES

    cal = QualitySet.load(qs.weights, CALIBRATION_IMAGES, 1, seed=s.seed, phantom_seed=CALIBRATION_PHANTOM_SEED)
    return batch_calibration(qs.autoencoder, qs.unet, cal.x, cal.mask, cal.uids, s.seed, s.steps,
                             f"phantoms of seed {CALIBRATION_PHANTOM_SEED}")


def _timing_notes(s: Settings, timed: int, rp_timed: int, rp, rp_paper, fl: dict) -> list[str]:
    notes = []
    if timed < s.steps:
        notes.append(f"AugPaint and eager: {timed} of {s.steps} U-Net calls timed per repeat, the loop's time "
                     f"scaled by {s.steps}/{timed} (encode and decode timed in full)")
    notes.append(f"AugPaint and RePaint repeats interleaved (A B A B ..., {s.repeats} each) on the row's engine; "
                 f"median and interquartile range")
    spread = "every transition (whole runs)" if rp_timed >= rp.unet_calls else (
        f"{max(rp_timed, s.repeats)} reverse steps and as many forward jumps spread evenly over the schedule, "
        f"divided among the {s.repeats} repeats (each repeat's share spans the whole run), each repeat's mean "
        f"seconds scaled by the exact counts")
    notes.append(f"RePaint ({rp.steps} steps, jumps {rp.jump_length} x {rp.jump_n_sample}: {rp.unet_calls} U-Net "
                 f"calls + {rp.forward_jumps} forward jumps): {spread}; RePaint as published ({rp_paper.steps} steps, "
                 f"jumps {rp_paper.jump_length} x {rp_paper.jump_n_sample}: {rp_paper.unet_calls:,} calls + "
                 f"{rp_paper.forward_jumps:,} jumps) is scaled from the same per-transition seconds, not run whole")
    notes.append(f"on the same U-Net the expected AugPaint / latent RePaint ratio is the ratio of counted FLOPs "
                 f"(encode + calls + decode): {_expected_ratio(fl, s.steps, rp):.2f}")
    notes.append("cached configurations (cache_interval > 1): executed FLOPs count each shallow call at its own "
                 f"cost ({fl['unet_shallow'] / fl['unet']:.0%} of a full call here); they enter no goal line for "
                 "exact engines and no ratio to RePaint, and RePaint never runs over them")
    notes.append("the eager loop and RePaint draw torch.randn noise (as RePaint's code does); AugPaint draws its "
                 "counter-based Philox noise inside the fused step")
    notes.append("executed GFLOP/s (the headline) = FLOPs the batch ran (encoder, U-Net calls as run, decoder) / "
                 "seconds; % of peak divides it by the best of the dense peak probes at the start and the end of "
                 "the run in the configuration's dtype; samples/s counts dense-equivalent samples of the "
                 f"{s.steps}-step method")
    return notes
