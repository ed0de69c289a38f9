"""Sharded sampling on Ray with 1 and 2 CPU workers (tiny preset) against the single-process job.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ray.py --sources 16 --n 8 --steps 50 --batch-size 8 \
        --workers 1 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ray.py --quick      # proves it works

Makes ``--sources`` phantoms, then samples them ``--n`` times each: once in this process (one torch thread, the
baseline) and once per entry of ``--workers`` with ``run_distributed`` on a local Ray started beforehand with
``--workers`` max CPUs (its start-up is timed apart). For a Ray run, ``total`` includes starting the workers
(interpreter, torch import, weights); ``sampling`` is from the first finished batch to the last, i.e. the
steady-state rate. Every run's PNGs are compared with the baseline's (they must be identical).
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch


def _same_pngs(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "images").glob("*.png"))
    return names == sorted(p.name for p in (b / "images").glob("*.png")) and all(
        (a / kind / n).read_bytes() == (b / kind / n).read_bytes() for kind in ("images", "labels") for n in names)


def _batch_times(out: Path) -> float:
    """Seconds from the first to the last pair file written (mtime): the steady-state sampling window."""
    times = sorted(p.stat().st_mtime for p in (out / "labels").glob("*.png"))
    return times[-1] - times[0] if len(times) > 1 else 0.0


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.sources, args.n, args.steps, args.batch_size = 3, 2, 3, 2
    import ray

    from augpaint_fast import host
    from augpaint_fast.assets import SHIPPED_WEIGHTS
    from augpaint_fast.embed.ray_workers import run_distributed
    from augpaint_fast.job.generate import SampleOptions, run_sampling
    from augpaint_fast.data.phantom import make_phantom

    torch.set_num_threads(1)
    opts = SampleOptions(n=args.n, steps=args.steps, batch_size=args.batch_size, seed=0)
    pairs = args.sources * args.n
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_phantom(root / "data", n=args.sources, seed=2026, size=64, progress=False)
        t0 = time.perf_counter()
        run_sampling(root / "data", SHIPPED_WEIGHTS, root / "single", opts, progress=False)
        total = time.perf_counter() - t0
        rows.append({"run": "single process, 1 thread", "total_s": total, "sampling_s": _batch_times(root / "single"),
                     "identical": True})
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        ray_start = time.perf_counter() - t0
        try:
            for w in args.workers:
                out = root / f"ray{w}"
                t0 = time.perf_counter()
                run_distributed(root / "data", SHIPPED_WEIGHTS, out, opts, workers=w, progress=False)
                rows.append({"run": f"ray, {w} worker(s)", "total_s": time.perf_counter() - t0,
                             "sampling_s": _batch_times(out), "identical": _same_pngs(root / "single", out)})
        finally:
            ray.shutdown()
    print(f"{host.cpu().model}, {host.cpu().logical} CPUs, torch {torch.__version__}; "
          f"{pairs} pairs ({args.sources} phantoms x {args.n}), {args.steps} steps, batch {args.batch_size}; "
          f"local Ray start {ray_start:.1f} s")
    print(f"{'run':<28} {'total s':>8} {'pairs/s':>8} {'sampling s':>11} {'pairs/s':>8}  same PNGs")
    for r in rows:
        steady = (pairs - args.batch_size) / r["sampling_s"] if r["sampling_s"] > 0 else float("nan")
        print(f"{r['run']:<28} {r['total_s']:8.2f} {pairs / r['total_s']:8.2f} {r['sampling_s']:11.2f} "
              f"{steady:8.2f}  {r['identical']}")
    return rows


if __name__ == "__main__":
    main()
