"""``sample``, ``demo``, ``make-phantom`` and ``info``: sampling a dataset, and the commands around it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..assets import SHIPPED_WEIGHTS
from ..checks import in_range, output_folder
from .command import Command
from ..errors import AugPaintError
from .options import (add_data_options, add_engine_options, add_ray_options, add_sampling_options,
                      add_speed_options, add_workers_option, engine_options, nifti_options, workers_from)

DEMO_SEED = 2026  # the demo's phantoms; the shipped weights were trained on phantoms of seed 0


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p)
    p.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS, help="weights folder (default: shipped tiny)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    add_sampling_options(p, "n", "steps", "eta", "mask", "margin", "flip", "seed", "batch_size")
    add_engine_options(p)
    p.add_argument("--output-size", default="model", choices=["model", "source"],
                   help="write pairs at the model's size (default) or resized back to the source's size")
    p.add_argument("--variant", default="uncond", choices=["uncond", "cond"],
                   help="uncond (default): AugPaint, the known region re-imposed at every step; cond: the "
                        "conditional U-Net of paper §3.1 (train-ldm --conditional), conditioned on the masked image")
    add_sampling_options(p, "paste_back", "max_classes")
    add_speed_options(p)
    add_workers_option(p, "generate the batches")
    add_ray_options(p)


def _sample(args) -> None:
    from ..job.generate import SampleOptions

    opts = SampleOptions(n=args.n, steps=args.steps, eta=args.eta, mask_mode=args.mask, margin=args.margin,
                         flip=args.flip, seed=args.seed, batch_size=args.batch_size, engine=args.engine,
                         output_size=args.output_size, paste_back=args.paste_back, variant=args.variant,
                         max_classes=args.max_classes, nifti=nifti_options(args), engine_options=engine_options(args))
    if args.ray is not None:  # sharded on Ray workers
        from ..embed.ray_workers import run_distributed

        if args.workers is not None:
            raise AugPaintError("--workers and --ray exclude each other; give Ray's workers with --ray-workers")
        summary = run_distributed(args.data, args.weights, args.out, opts, address=args.ray,
                                  workers=args.ray_workers, cpus_per_worker=args.ray_cpus_per_worker)
    else:
        summary = _sample_locally(args, opts)
    print(summary.line())


def _sample_locally(args, opts):
    """``--workers`` engine processes of one thread each, or one engine of one thread in this process."""
    from ..job.generate import run_sampling
    from ..job.workers import THREADS, run_with_workers, torch_threads

    workers = workers_from(args)
    if workers > 1:
        return run_with_workers(args.data, args.weights, args.out, opts, workers)
    with torch_threads(THREADS):  # the threads of each worker: --workers 1 writes the bytes of --workers N
        return run_sampling(args.data, args.weights, args.out, opts)


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--n", type=int, default=6, help="samples per phantom (default 6)")


def _demo(args) -> None:
    from ..data.phantom import make_phantom
    from ..job.generate import SampleOptions, check_options, run_sampling

    t0 = time.perf_counter()
    opts = SampleOptions(n=args.n, seed=DEMO_SEED)
    check_options(opts)
    output_folder("--out", args.out)
    data = args.out / "data"
    make_phantom(data, n=6, seed=DEMO_SEED, size=64, progress=False)
    summary = run_sampling(data, SHIPPED_WEIGHTS, args.out / "samples", opts)
    print(summary.line())
    print(f"preview: {args.out / 'samples' / 'preview.png'} (demo wall time {time.perf_counter() - t0:.1f} s)")


def _phantom_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=16, help="labelled image/label pairs")
    p.add_argument("--unlabelled", type=int, default=0, help="extra unlabelled images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=None, help="organ classes (default 3; hard: 5, at most 5)")
    p.add_argument("--style", default="default", choices=["default", "hard"],
                   help="default, or hard: varying anatomy, overlapping intensities, bias field, Rician noise")


def _make_phantom(args) -> None:
    from ..data.phantom import make_phantom

    output_folder("--out", args.out)
    in_range("--seed", args.seed, 0, 0xFFFFFFFF)
    classes = args.classes if args.classes is not None else (5 if args.style == "hard" else 3)
    make_phantom(args.out, n=args.n, seed=args.seed, size=args.size, unlabelled=args.unlabelled, classes=classes,
                 style=args.style)
    style = "hard " if args.style == "hard" else ""
    print(f"{args.n} labelled + {args.unlabelled} unlabelled {style}phantom images ({args.size}x{args.size}, "
          f"{classes} classes) -> {args.out}")


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny")
    p.add_argument("--weights", type=Path, default=None, help="also say how this weights folder was made")


def _info(args) -> None:
    import torch

    from ..engines import engine_status
    from ..models.flops import describe_preset

    print(describe_preset(args.preset))
    if args.weights is not None:
        from ..interop.command import describe_import

        print(describe_import(args.weights))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    _print_kernels()
    for name, missing in engine_status().items():
        print(f"engine {name}: {'available' if missing is None else 'unavailable: ' + missing}")


def _print_kernels() -> None:
    from ..ops import fused
    from ..ops.fused_norm import norm_status

    status = fused.kernel_status()
    cpp = status["cpp"]
    print(f"fused step kernel path: {status['cpu']['path']} for CPU tensors ({status['cpu']['reason']})")
    built = f"built, {cpp['simd']}, {cpp['threads']} threads" if cpp["available"] else f"missing: {cpp['reason']}"
    print(f"  C++ extension: {built}")
    tri = status["triton"]
    print(f"  Triton: {'triton ' + tri['version'] if tri['available'] else 'missing: ' + str(tri['reason'])}")
    if "cuda" in status:
        print(f"  CUDA tensors: {status['cuda']['path']} ({status['cuda']['reason']})")
    print(f"fused GroupNorm+SiLU kernel path: {norm_status()['cpu']['path']} for CPU tensors "
          f"({norm_status()['cpu']['reason']})")


SAMPLE = Command("sample", "generate image/label pairs from a labelled dataset", _sample_arguments, _sample)
PHANTOM = Command("make-phantom", "write a deterministic synthetic multi-class dataset", _phantom_arguments,
                  _make_phantom)
INFO = Command("info", "models' parameters and FLOPs, kernel path, engines", _info_arguments, _info)
DEMO = Command("demo", "sample a small phantom set with the shipped tiny weights", _demo_arguments, _demo)
