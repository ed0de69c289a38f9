"""The ``augpaint-fast`` command line.

Every error the user can cause is printed as one line, ``augpaint-fast: error: <what and where>``, with exit
status 2; an interrupted run says how to resume (rerun the same command) and exits with 130.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..assets import SHIPPED_WEIGHTS
from ..checks import in_range, output_folder
from ..errors import AugPaintError

DEMO_SEED = 2026  # the demo's phantoms; the shipped weights were trained on phantoms of seed 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset folder with images/ and labels/ (and unlabelled/)")
    p.add_argument("--nifti-axis", type=int, default=2, help="axis NIfTI volumes are sliced along (default 2)")
    p.add_argument("--nifti-channel", type=int, default=None, help="channel of 4-D multi-modal volumes (BraTS FLAIR)")
    p.add_argument("--ct-window", type=float, nargs=2, metavar=("CENTER", "WIDTH"), default=None,
                   help="CT window instead of per-volume percentile normalisation")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    """The engine and every option of it; an option the chosen engine does not take is refused in one line."""
    from ..engines import ENGINES

    g = p.add_argument_group("engine", "how the models run (`augpaint-fast info` lists the engines available here)")
    g.add_argument("--engine", default="torch", help=f"one of: {', '.join(ENGINES)} (default torch)")
    g.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    g.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="U-Net (and trt encoder) compute dtype (default float32; trt builds float16)")
    g.add_argument("--autoencoder-dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="torch: encoder/decoder compute dtype (default float32)")
    g.add_argument("--decoder-dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="trt: decoder plan precision (default float32: the codebook lookup stays exact)")
    g.add_argument("--cuda-graphs", default=None, action=argparse.BooleanOptionalAction,
                   help="torch/trt on CUDA: capture the U-Net call and the whole sampling loop in CUDA graphs "
                        "(torch default off, trt default on)")
    g.add_argument("--compile", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                   help="torch: torch.compile the U-Net with this mode")
    g.add_argument("--channels-last", default=None, action="store_true", help="torch: NHWC memory format")
    g.add_argument("--engine-batch-sizes", type=int, nargs="+", default=None, metavar="B",
                   help="batch sizes static engines are built/captured for (trt profile, CUDA graphs, onnx "
                        "fixed shapes); calls are padded up to one of them")
    g.add_argument("--threads", type=int, default=None, help="onnx: intra-op threads (default: physical cores)")
    g.add_argument("--engine-cache", type=Path, default=None,
                   help="where onnx/trt exports and engines are cached (default $AUGPAINT_FAST_CACHE or ~/.cache)")


def _nifti(args):
    from ..data import NiftiOptions

    window = tuple(args.ct_window) if args.ct_window else None
    return NiftiOptions(axis=args.nifti_axis, channel=args.nifti_channel, window=window)


def _parser() -> argparse.ArgumentParser:
    from ..bench.command import add_bench_args
    from ..embed.ray_workers import add_ray_args
    from .speed_options import add_speed_args
    from ..export.command import add_export_args
    from ..core.masks import FLIP_MODES, MASK_MODES
    from ..embed.service.command import add_serve_args

    ap = argparse.ArgumentParser(prog="augpaint-fast", description="AugPaint: inpainting-based augmentation for "
                                 "few-label medical image segmentation.")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="generate image/label pairs from a labelled dataset")
    _add_data_args(s)
    s.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS, help="weights folder (default: shipped tiny)")
    s.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    s.add_argument("--n", type=int, default=4, help="samples per labelled image (default 4)")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    s.add_argument("--eta", type=float, default=1.0, help="DDIM eta: 1 = Algorithm 1 (default), 0 = deterministic")
    s.add_argument("--mask", default="box", choices=MASK_MODES, help="known region: box (default), component or label")
    s.add_argument("--margin", type=int, default=0, help="pixels added around each box (default 0)")
    s.add_argument("--flip", default="none", choices=FLIP_MODES, help="flip image+label before inpainting: none, "
                   "horizontal, vertical, both or random (paper §4.4)")
    s.add_argument("--seed", type=int, default=0, help="unsigned 32-bit seed; fixes every random number")
    s.add_argument("--batch-size", type=int, default=8)
    _add_engine_args(s)
    s.add_argument("--output-size", default="model", choices=["model", "source"],
                   help="write pairs at the model's size (default) or resized back to the source's size")
    s.add_argument("--variant", default="uncond", choices=["uncond", "cond"],
                   help="uncond (default): AugPaint, the known region re-imposed at every step; cond: the "
                        "conditional U-Net of paper §3.1 (train-ldm --conditional), conditioned on the masked image")
    s.add_argument("--paste-back", action="store_true",
                   help="after decoding, paste the source's pixels into the known region with a feathered edge")
    s.add_argument("--max-classes", type=int, default=16, help="refuse labels with more classes than this")
    add_speed_args(s)  # --cache-interval, --fused-norm, --flash-attention (cli/speed_options.py)
    add_ray_args(s)  # --ray [ADDRESS], --ray-workers, --ray-cpus-per-worker (embed/ray_workers.py)

    for name, model in (("train-ae", "autoencoder"), ("train-ldm", "latent diffusion U-Net")):
        t = sub.add_parser(name, help=f"train the {model} on every image of a dataset",
                           description=f"Train the {model} on every image of a dataset. An interrupted run "
                           "resumes when rerun with the same settings. A finished model is never replaced by "
                           "accident: the same command reports it, other settings (more --steps included: a "
                           "finished run keeps no optimizer state to continue from) are refused unless --force, "
                           "which trains a new model from scratch in its place.")
        _add_data_args(t)
        t.add_argument("--weights", type=Path, required=True, help="weights folder to write (and resume in)")
        t.add_argument("--preset", default="tiny", help="model preset: tiny, small or paper")
        t.add_argument("--steps", type=int, default=4000, help="optimizer steps, >= 1 (default 4000)")
        batch = 32 if name == "train-ae" else 64
        t.add_argument("--batch-size", type=int, default=batch, help=f"global batch, >= 1 (default {batch})")
        t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, finite and > 0 (default 1e-3)")
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--checkpoint-every", type=int, default=500,
                       help="steps between resumable checkpoints, >= 1 (default 500)")
        t.add_argument("--force", action="store_true",
                       help="replace a finished model trained with other settings (trains from scratch)")
        t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available); under torchrun "
                                                      "each process takes its own GPU")
        if name == "train-ae":
            t.add_argument("--disc", action="store_true", help="add a PatchGAN loss after --disc-start steps")
            t.add_argument("--disc-start", type=int, default=2000, help="step the PatchGAN loss starts at, >= 0")
        else:
            t.add_argument("--conditional", action="store_true",
                           help="train the conditional U-Net (paper §3.1) into WEIGHTS/unet-cond/ for --variant cond")
            t.add_argument("--flip-augment", action="store_true",
                           help="also train on horizontally/vertically flipped images (not for fixed anatomy)")

    m = sub.add_parser("make-phantom", help="write a deterministic synthetic multi-class dataset")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--n", type=int, default=16, help="labelled image/label pairs")
    m.add_argument("--unlabelled", type=int, default=0, help="extra unlabelled images")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--size", type=int, default=64)
    m.add_argument("--classes", type=int, default=None, help="organ classes (default 3; hard: 5, at most 5)")
    m.add_argument("--style", default="default", choices=["default", "hard"],
                   help="default, or hard: varying anatomy, overlapping intensities, bias field, Rician noise")

    add_export_args(sub.add_parser("export", help="export the models to ONNX (and TensorRT plans), cached"))
    add_bench_args(sub.add_parser("bench", help="time AugPaint's engines against the eager loop, RePaint and the "
                                  "machine's dense peak; writes JSON, a Markdown table and a plot"))

    v = sub.add_parser("serve", help="serve AugPaint over HTTP (POST /augment, GET /health, GET /metrics)")
    add_serve_args(v, SHIPPED_WEIGHTS)  # embed/service/command.py
    _add_engine_args(v)
    add_speed_args(v)

    from ..segmentation.commands import add_segmentation_commands
    add_segmentation_commands(sub)  # train-seg, evaluate, filter, rand-aug, export-dataset (args.handler)
    from ..pipeline.run import add_pipeline_args, pipeline_command

    pl = sub.add_parser("pipeline", help="the whole method: AE, LDM, sample, filter, train-seg, evaluate, over "
                                         "splits of labelled cases, with the paper's baselines (results table)")
    add_pipeline_args(pl)
    pl.set_defaults(handler=pipeline_command)

    from ..interop.command import add_import_args, import_command  # interop: diffusers/MONAI models in

    iw = sub.add_parser("import-weights", help="convert a local diffusers or MONAI model into a weights folder")
    add_import_args(iw)
    iw.set_defaults(handler=import_command)

    i = sub.add_parser("info", help="models' parameters and FLOPs, kernel path, engines")
    i.add_argument("--preset", default="tiny")
    i.add_argument("--weights", type=Path, default=None, help="also say how this weights folder was made")

    d = sub.add_parser("demo", help="sample a small phantom set with the shipped tiny weights")
    d.add_argument("--out", type=Path, default=Path("demo_out"))
    d.add_argument("--n", type=int, default=6, help="samples per phantom (default 6)")
    return ap


# command-line flag -> engine constructor option (given flags only; create_engine refuses the ones an engine lacks)
ENGINE_FLAGS = {"dtype": "dtype", "device": "device", "engine_cache": "cache_dir",
                "autoencoder_dtype": "autoencoder_dtype", "decoder_dtype": "decoder_dtype",
                "cuda_graphs": "cuda_graphs", "compile": "compile", "channels_last": "channels_last",
                "engine_batch_sizes": "batch_sizes", "threads": "threads"}


def _engine_options(args) -> dict:
    """The engine flags given on the command line, under the names the engines' constructors take."""
    from .speed_options import speed_options

    options = {opt: getattr(args, flag) for flag, opt in ENGINE_FLAGS.items()}
    options.update(speed_options(args))  # --cache-interval, --fused-norm, --flash-attention
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None}


def _sample(args) -> None:
    from ..job.generate import SampleOptions, run_sampling

    opts = SampleOptions(n=args.n, steps=args.steps, eta=args.eta, mask_mode=args.mask, margin=args.margin,
                         flip=args.flip, seed=args.seed, batch_size=args.batch_size, engine=args.engine,
                         output_size=args.output_size, paste_back=args.paste_back, variant=args.variant,
                         max_classes=args.max_classes, nifti=_nifti(args), engine_options=_engine_options(args))
    if args.ray is not None:  # sharded on Ray workers (embed/ray_workers.py)
        from ..embed.ray_workers import sample_command

        return sample_command(args, opts)
    summary = run_sampling(args.data, args.weights, args.out, opts)
    print(summary.line())


def _train(args) -> None:
    import os

    from ..training import train_autoencoder, train_ldm

    report = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *a, **k: None)  # torchrun: rank 0 reports
    common = dict(preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                  checkpoint_every=args.checkpoint_every, nifti=_nifti(args), device=args.device, force=args.force)
    if args.command == "train-ae":
        r = train_autoencoder(args.data, args.weights, disc=args.disc, disc_start=args.disc_start, **common)
        done = "already trained, " if r.already_done else ""
        report(f"autoencoder: {done}{r.steps} steps in {r.seconds:.0f} s, held-out PSNR {r.heldout_psnr:.2f} dB, "
              f"{r.codes_used} codes used -> {args.weights / 'autoencoder'}")
    else:
        r = train_ldm(args.data, args.weights, conditional=args.conditional, flip_augment=args.flip_augment,
                      **common)
        done = "already trained, " if r.already_done else ""
        report(f"{'unet-cond' if args.conditional else 'unet'}: {done}{r.steps} steps in {r.seconds:.0f} s, final loss {r.final_loss:.4f}, latent shift "
              f"{[round(v, 3) for v in r.latent_shift]} scale {[round(v, 3) for v in r.latent_scale]} "
              f"-> {args.weights / ('unet-cond' if args.conditional else 'unet')}")


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


def _info(args) -> None:
    import torch

    from ..ops import fused
    from ..engines import engine_status
    from ..models.flops import describe_preset

    print(describe_preset(args.preset))
    if args.weights is not None:
        from ..interop.command import describe_import

        print(describe_import(args.weights))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    status = fused.kernel_status()
    cpp = status["cpp"]
    print(f"fused step kernel path: {status['cpu']['path']} for CPU tensors ({status['cpu']['reason']})")
    print(f"  C++ extension: {'built, ' + cpp['simd'] + ', ' + str(cpp['threads']) + ' threads' if cpp['available'] else 'missing: ' + str(cpp['reason'])}")
    tri = status["triton"]
    print(f"  Triton: {'triton ' + tri['version'] if tri['available'] else 'missing: ' + str(tri['reason'])}")
    if "cuda" in status:
        print(f"  CUDA tensors: {status['cuda']['path']} ({status['cuda']['reason']})")
    from ..ops.fused_norm import norm_status

    print(f"fused GroupNorm+SiLU kernel path: {norm_status()['cpu']['path']} for CPU tensors "
          f"({norm_status()['cpu']['reason']})")
    for name, missing in engine_status().items():
        print(f"engine {name}: {'available' if missing is None else 'unavailable: ' + missing}")


def _export(args) -> None:
    from ..export.command import export_command

    export_command(args)


def _bench(args) -> None:
    from ..bench.command import bench_command

    bench_command(args)


def _demo(args) -> None:
    from ..job.generate import SampleOptions, check_options, run_sampling
    from ..data.phantom import make_phantom

    t0 = time.perf_counter()
    opts = SampleOptions(n=args.n, seed=DEMO_SEED)
    check_options(opts)
    output_folder("--out", args.out)
    data = args.out / "data"
    make_phantom(data, n=6, seed=DEMO_SEED, size=64, progress=False)
    summary = run_sampling(data, SHIPPED_WEIGHTS, args.out / "samples", opts)
    print(summary.line())
    print(f"preview: {args.out / 'samples' / 'preview.png'} (demo wall time {time.perf_counter() - t0:.1f} s)")


def _serve(args) -> None:
    from ..embed.service.command import serve_command

    serve_command(args, _engine_options(args))


COMMANDS = {"sample": _sample, "train-ae": _train, "train-ldm": _train, "make-phantom": _make_phantom,
            "export": _export, "info": _info, "demo": _demo, "bench": _bench, "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        (getattr(args, "handler", None) or COMMANDS[args.command])(args)
    except AugPaintError as exc:
        print(f"augpaint-fast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("augpaint-fast: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
