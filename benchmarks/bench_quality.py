"""Quality (and wall-clock speed) of the CPU speed configurations on trained weights: every configuration samples
the same phantom set with the same seed through the real job (``generate.run_sampling``), and is compared with
the eager float32 torch run (``augpaint_fast.job.quality.run_quality``). Not a test.

    python benchmarks/bench_quality.py                                   # shipped tiny weights, CPU configs
    python benchmarks/bench_quality.py --weights runs/small --configs torch-fp32 openvino-bf16 openvino-bf16-c3
    python benchmarks/bench_quality.py --configs torch:cache_interval=3      # any ENGINE:KEY=VALUE,...

Configurations are `augpaint-fast bench`'s (augpaint_fast/bench/configs.py): the default is every label there
that runs on a CPU.

Per configuration: known-region PSNR against the source (mean, min), mean and max absolute difference to the
fp32 eager samples of the same seed (grey levels), outside-box diversity (grey levels, mean over pairs of samples
of one source), U-Net calls (full + shallow) and the run's samples/s (the job's own wall clock: sampling +
decode + PNG writing; a quick figure on a shared machine, not a benchmark).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augpaint_fast.assets import SHIPPED_WEIGHTS  # noqa: E402
from augpaint_fast.bench.configs import CONFIGS, RUNTIME_OPTIONS, parse_config  # noqa: E402
from augpaint_fast.job.generate import Job, SampleOptions  # noqa: E402
from augpaint_fast.data.phantom import make_phantom  # noqa: E402
from augpaint_fast.job.quality import run_quality  # noqa: E402

REFERENCE = "torch-fp32"  # every other configuration is compared with it
CPU_LABELS = [c.label for c in CONFIGS if "cpu" in c.devices]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    ap.add_argument("--data", type=Path, default=None, help="dataset (default: 8 phantoms of seed 2026 at the "
                                                              "model's size, written to a temporary folder)")
    ap.add_argument("--configs", nargs="+", default=CPU_LABELS,
                    help="`augpaint-fast bench` labels or ENGINE:KEY=VALUE,... (default: the CPU ones)")
    ap.add_argument("--n", type=int, default=4, help="samples per source")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--threads", type=int, default=None,
                    help="onnx/openvino threads (torch: OMP_NUM_THREADS)")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON lines")
    args = ap.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    cache = root / "engine-cache"
    configs = [REFERENCE] + [c for c in args.configs if c != REFERENCE]
    rows = []
    print(f"# weights {args.weights}, {args.steps} steps, batch {args.batch_size}, seed {args.seed}, runs in {root}")
    print("| config | known PSNR dB (min) | MAD to fp32 (max), grey | diversity, grey | U-Net calls full+shallow "
          "| samples/s (quick) |")
    print("|---|---|---|---|---|---|")
    data = args.data
    for name in configs:
        config = parse_config(name)
        engine = config.engine
        runtime = {"cache_dir": str(cache), "threads": args.threads}
        options = {**config.options, **{k: runtime[k] for k in RUNTIME_OPTIONS.get(engine, ()) if runtime[k]}}
        opts = SampleOptions(n=args.n, steps=args.steps, seed=args.seed, batch_size=args.batch_size, engine=engine,
                             engine_options=options)
        out = root / name
        job_data = data
        if job_data is None:
            job_data = root / "data"
            if not job_data.exists():
                from augpaint_fast.models.checkpoint import load_weights_folder

                _, ae_cfg, _, _ = load_weights_folder(args.weights)
                make_phantom(job_data, n=8, seed=args.seed, size=ae_cfg.resolution, progress=False)
        job = Job(job_data, args.weights, out, opts, progress=False)  # engines build/compile here, not timed
        summary = job.run()
        cached = getattr(job.generator.engine, "_cached", None)
        batches = -(-summary.written // args.batch_size)
        calls = (cached.full_calls, cached.shallow_calls) if cached else (batches * args.steps, 0)
        q = run_quality(out, reference=root / REFERENCE)
        row = {"config": name, "engine": engine, "options": options, "dtype": config.dtype,
               "cache_interval": config.cache_interval, "weights": str(args.weights),
               "steps": args.steps, "samples_per_s": summary.written / summary.seconds, "unet_calls": calls,
               **q.to_dict()}
        rows.append(row)
        print(f"| {name} | {q.known_psnr_db:.2f} ({q.known_psnr_min_db:.2f}) | {q.mad_to_reference_grey:.3f} "
              f"({q.max_diff_to_reference_grey:.0f}) | {q.diversity_grey:.2f} | {calls[0]}+{calls[1]} | "
              f"{row['samples_per_s']:.2f} |", flush=True)
    if args.json:
        args.json.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
