"""U-Net call time per engine configuration, the configurations interleaved call by call and the minimum of N kept:
a comparison that survives a shared machine (every configuration sees the same load). Not a test; samples/s of
whole runs are `augpaint-fast bench`'s job.

    OMP_NUM_THREADS=1 python benchmarks/bench_unet_calls.py --threads 1 --configs torch-fp32 torch-bf16 \
        openvino-bf16 openvino-bf16-c3

Configurations are `augpaint-fast bench` labels or ENGINE:KEY=VALUE,...; random weights (speed does not depend
on them). A feature-caching configuration (-cN) reports its full and its shallow call, and their average over N
calls.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augpaint_fast.bench.configs import RUNTIME_OPTIONS, parse_config  # noqa: E402
from augpaint_fast.bench.runner import perturbed  # noqa: E402
from augpaint_fast.models.config import get_preset  # noqa: E402
from augpaint_fast.engines import create_engine  # noqa: E402
from augpaint_fast.models import UNet, VQAutoencoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--configs", nargs="+", default=["torch-fp32", "torch-bf16", "openvino-bf16"])
    ap.add_argument("--calls", type=int, default=9, help="timed calls per configuration (default 9)")
    ap.add_argument("--threads", type=int, default=None, help="torch and engine threads")
    ap.add_argument("--engine-cache", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = get_preset(args.preset)
    ae, unet = VQAutoencoder(preset.autoencoder).eval(), perturbed(UNet(preset.unet).eval(), 0)
    cache = str(args.engine_cache or tempfile.mkdtemp(prefix="bench-calls-"))
    runtime = {"cache_dir": cache, "threads": args.threads}
    lat = preset.unet.latent_size
    z = torch.randn(args.batch, preset.unet.in_channels, lat, lat)
    t = torch.full((args.batch,), 500, dtype=torch.int64)
    calls, interval = {}, {}
    for spec in args.configs:
        cfg = parse_config(spec)
        extra = {k: runtime[k] for k in RUNTIME_OPTIONS.get(cfg.engine, ()) if runtime[k] is not None}
        engine = create_engine(cfg.engine, ae, unet, **cfg.options, **extra)
        cached = getattr(engine, "_cached", None)
        if cached is None:
            calls[cfg.label] = lambda e=engine: e.denoiser(z, t)
            continue
        _, feature = cached.full(z, t, None)
        calls[f"{cfg.label} full"] = lambda c=cached: c.full(z, t, None)
        calls[f"{cfg.label} shallow"] = lambda c=cached, f=feature: c.shallow(z, t, None, f)
        interval[cfg.label] = cfg.cache_interval
    for fn in calls.values():  # warm-up (lazy compilation, allocator)
        fn()
    times = {k: [] for k in calls}
    for _ in range(args.calls):
        for k, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    base = best.get(args.configs[0]) or next(iter(best.values()))
    print(f"# {args.preset}, batch {args.batch}, {torch.get_num_threads()} torch threads, min of {args.calls} "
          f"interleaved calls; ratios against {args.configs[0]}")
    print("| config | ms per U-Net call (min) | vs first |")
    print("|---|---|---|")
    for k, v in best.items():
        print(f"| {k} | {v * 1e3:.1f} | {base / v:.2f}x |")
    for label, n in interval.items():
        avg = (best[f"{label} full"] + (n - 1) * best[f"{label} shallow"]) / n
        print(f"| {label} (average over {n} calls) | {avg * 1e3:.1f} | {base / avg:.2f}x |")


if __name__ == "__main__":
    main()
