"""The whole benchmark in one run: the machine's limits, every method x configuration x batch size, quality.

Order: dense peak per dtype and copy bandwidth; the baselines per batch size (eager loop, pixel RePaint);
per engine configuration, AugPaint and latent RePaint per batch size; then quality on trained weights. Each
measurement becomes one record (a dict, see ``record``); ratios are filled in once all are known, at equal
batch size: vs the eager loop, vs latent RePaint on the same configuration (the torch-fp32 one for records
that have no configuration of their own), vs pixel RePaint.
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
from .configs import RUNTIME_OPTIONS, BenchConfig, default_configs
from .machine import Timing, dense_peak, machine_info, memory_bandwidth_gbs, versions
from .quality_set import QualitySet

BASELINE = "torch-fp32"  # the configuration whose latent RePaint the baselines' ratios use


@dataclass
class Settings:
    """One bench run (the CLI's flags)."""

    preset: str = "small"
    batch_sizes: tuple[int, ...] = (1, 4, 8, 16)
    steps: int = 50
    repeats: int = 3
    timed_steps: int | None = None  # AugPaint/eager calls timed per repeat (None: all)
    repaint_timed_calls: int = 3
    jump_length: int = 10
    jump_n_sample: int = 5
    device: str = "cpu"
    threads: int | None = None
    configs: list[BenchConfig] | None = None  # None: the defaults available here
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
        resolve_device(self.device)  # a device that is not there fails here, before any work


@dataclass
class Result:
    records: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _engine_options(cfg: BenchConfig, s: Settings) -> dict:
    runtime = {"cache_dir": str(s.engine_cache) if s.engine_cache else None, "threads": s.threads}
    extra = {k: runtime[k] for k in RUNTIME_OPTIONS.get(cfg.engine, ()) if runtime[k] is not None}
    return {**cfg.options, "device": s.device, **extra}


def run_bench(s: Settings, log: Callable[[str], None] = print) -> Result:
    """Measure everything ``s`` asks for; ``log`` gets one line per finished measurement."""
    s.check()
    device = torch.device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    explicit = s.configs is not None
    if explicit:
        configs, skipped = list(s.configs), {}
        for cfg in configs:
            missing = engine_status().get(cfg.engine)
            if missing:
                raise AugPaintError(f"--configs {cfg.label}: engine {cfg.engine} is unavailable: {missing}")
    else:
        configs, skipped = default_configs(device.type)
    notes = [f"{label} not measured: {why}" for label, why in skipped.items()]
    quality_set = _quality_set(s) if s.quality else None  # a bad --weights fails now, not after the timing

    machine, vers = machine_info(device), versions()
    dtypes = ["float32"] + sorted({c.dtype for c in configs} - {"float32"})
    peaks = {}
    for dt in dtypes:
        peaks[dt] = dense_peak(DTYPES[dt], device)
        log(f"dense peak {dt}: {peaks[dt]['gflops']:.1f} GFLOP/s ({peaks[dt]['kernel']}; matmul "
            f"{peaks[dt]['matmul_gflops']:.1f}, conv3x3 {peaks[dt]['conv_gflops']:.1f})")
    bandwidth = memory_bandwidth_gbs(device)
    log(f"copy bandwidth: {bandwidth:.1f} GB/s")

    work = runner.Workload.build(s.preset, s.seed, pixel=s.pixel)
    ddim = ddim_schedule(s.steps, 1.0)
    rp = repaint_schedule(s.steps, s.jump_length, s.jump_n_sample)
    timed = min(s.timed_steps or s.steps, s.steps)
    rp_timed = min(s.repaint_timed_calls, rp.unet_calls)
    fl = work.flops
    per_sample = {
        "augpaint": fl["encoder"] + s.steps * fl["unet"] + fl["decoder"],
        "eager": fl["encoder"] + s.steps * fl["unet"] + fl["decoder"],
        "repaint_latent": fl["encoder"] + rp.unet_calls * fl["unet"] + fl["decoder"],
        "repaint_pixel": rp.unet_calls * fl["pixel_unet"],
    }
    common = {"preset": s.preset, "steps": s.steps, "device": str(device), "machine": machine, "versions": vers,
              "dense_peak": peaks, "memory_bandwidth_gbs": round(bandwidth, 2), "command": s.command,
              "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "repaint_jumps": {"jump_length": s.jump_length, "jump_n_sample": s.jump_n_sample}}
    records: list[dict] = []

    def record(method: str, label: str, engine: str, options: dict, dtype: str, batch: int, timing: Timing,
               timed_calls: int, noise: str, cache_interval: int = 1, kernel: str = "unfused (PyTorch ops)") -> None:
        calls = rp.unet_calls if method.startswith("repaint") else s.steps
        unet_flops = fl["pixel_unet"] if method == "repaint_pixel" else fl["unet"]
        flops = batch * per_sample[method]
        rec = {"config": label, "engine": engine, "options": options, "method": method, "batch_size": batch,
               "unet_calls": calls, "timed_calls": timed_calls,
               "forward_jumps": rp.forward_jumps if method.startswith("repaint") else 0,
               "seconds_per_batch": timing.median, "seconds_min": timing.min, "seconds_max": timing.max,
               "repeats": timing.repeats, "samples_per_s": batch / timing.median,
               "gflop_per_call": batch * unet_flops / 1e9, "gflop_per_sample_call": unet_flops / 1e9,
               "gflop_per_batch": flops / 1e9, "achieved_gflops": flops / timing.median / 1e9,
               "fraction_of_peak": flops / timing.median / (peaks[dtype]["gflops"] * 1e9),
               "dtype": dtype, "cache_interval": cache_interval, "noise": noise, "step_kernel": kernel, **common}
        records.append(rec)
        log(f"{label:>18} {method:>15} B={batch:<3} {timing.median:8.3f} s/batch ({timing.min:.3f}-{timing.max:.3f})"
            f"  {rec['samples_per_s']:8.3f} samples/s  {100 * rec['fraction_of_peak']:5.1f}% of {dtype} peak"
            f"  [{timed_calls}/{calls} calls timed]")

    baselines = ["eager"] + (["repaint_pixel"] if s.pixel else [])
    tasks = len(s.batch_sizes) * (len(baselines) + 2 * len(configs))
    bar = progress(total=tasks, desc="bench", unit="run")
    inputs = {b: runner.Inputs.make(work, b, device) for b in s.batch_sizes}
    for b in s.batch_sizes:
        bar.set_postfix_str(f"eager B={b}")
        record("eager", "eager", "torch", {}, "float32", b,
               runner.time_eager(work, inputs[b], ddim, timed, s.repeats, device), timed, "torch.randn")
        bar.update()
        if s.pixel:
            bar.set_postfix_str(f"pixel RePaint B={b}")
            record("repaint_pixel", "repaint-pixel", "torch", {}, "float32", b,
                   runner.time_repaint_pixel(work, inputs[b], rp, rp_timed, s.repeats, device), rp_timed,
                   "torch.randn")
            bar.update()
    measured = []
    for cfg in configs:
        bar.set_postfix_str(f"{cfg.label}: building the engine")
        options = _engine_options(cfg, s)
        try:
            engine = create_engine(cfg.engine, work.autoencoder, work.unet, **options)
        except AugPaintError as exc:
            if explicit:
                raise
            notes.append(f"{cfg.label} not measured: {exc}")
            bar.update(2 * len(s.batch_sizes))
            continue
        measured.append(cfg)
        for b in s.batch_sizes:
            bar.set_postfix_str(f"{cfg.label} B={b}")
            timing, kernel = runner.time_augpaint(engine, work, inputs[b], ddim, timed, s.repeats, s.seed)
            record("augpaint", cfg.label, cfg.engine, cfg.options, cfg.dtype, b, timing, timed, "philox",
                   cfg.cache_interval, kernel)
            bar.update()
            bar.set_postfix_str(f"{cfg.label} latent RePaint B={b}")
            record("repaint_latent", cfg.label, cfg.engine, cfg.options, cfg.dtype, b,
                   runner.time_repaint_latent(engine, work, inputs[b], rp, rp_timed, s.repeats), rp_timed,
                   "torch.randn")
            bar.update()
    bar.close()
    _fill_ratios(records)

    quality_note = "not measured (--no-quality)"
    if quality_set is not None:
        quality_note = _quality(quality_set, records, measured, s, ddim, rp, device, notes, log)
    notes += _timing_notes(s, timed, rp_timed, rp)
    summary = {**{k: common[k] for k in ("preset", "steps", "machine", "versions", "dense_peak",
                                          "memory_bandwidth_gbs", "command")},
               "repeats": s.repeats, "flops_gflop": {k: v / 1e9 for k, v in fl.items()},
               "flops_per_sample_augpaint": per_sample["augpaint"], "params": work.params, "notes": notes,
               "quality_note": quality_note}
    return Result(records, summary)


def _fill_ratios(records: list[dict]) -> None:
    index = {(r["method"], r["config"], r["batch_size"]): r for r in records}
    for r in records:
        b = r["batch_size"]
        eager = index.get(("eager", "eager", b))
        latent = index.get(("repaint_latent", r["config"], b)) or index.get(("repaint_latent", BASELINE, b))
        pixel = index.get(("repaint_pixel", "repaint-pixel", b))
        for key, ref in (("speedup_vs_eager", eager), ("speedup_vs_repaint_latent", latent),
                         ("speedup_vs_repaint_pixel", pixel)):
            r[key] = r["samples_per_s"] / ref["samples_per_s"] if ref else None


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
    for cfg in configs:
        bar.set_postfix_str(cfg.label)
        images = qs.augpaint(cfg, _engine_options(cfg, s), ddim)
        scores[("augpaint", cfg.label)] = {**qs.scores(images, reference), "quality_of": cfg.label}
        bar.update()
    bar.set_postfix_str("latent RePaint")
    rp_scores = {**qs.scores(qs.repaint_latent(rp, device), None),
                 "quality_of": "latent RePaint, plain float32 U-Net"}
    bar.update()
    bar.close()
    empty = {"known_psnr_db": None, "known_psnr_min_db": None, "mad_grey_vs_eager": None, "quality_samples": 0,
             "diversity_grey": None, "quality_of": None}
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
            f"source, MAD in grey levels against the eager float32 loop with the same counter-based noise")


def _timing_notes(s: Settings, timed: int, rp_timed: int, rp) -> list[str]:
    notes = []
    if timed < s.steps:
        notes.append(f"AugPaint and eager: {timed} of {s.steps} U-Net calls timed per repeat, the loop's time "
                     f"scaled by {s.steps}/{timed} (encode and decode timed in full)")
    notes.append(f"RePaint ({s.steps} steps, jumps {s.jump_length} x {s.jump_n_sample}: {rp.unet_calls} U-Net "
                 f"calls + {rp.forward_jumps} forward jumps): {rp_timed} reverse steps and {rp_timed} jumps timed "
                 f"per repeat, each scaled by its exact count")
    notes.append("the eager loop and RePaint draw torch.randn noise (as RePaint's code does); AugPaint draws its "
                 "counter-based Philox noise inside the fused step")
    notes.append("% of peak = all counted FLOPs of the batch (encoder, U-Net calls, decoder) / seconds / the "
                 "measured dense peak in the configuration's dtype")
    return notes
