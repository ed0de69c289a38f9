"""Option groups shared by several commands, each declared once: data, sampling, engine, speed, Ray.

``sample``, ``serve`` and ``pipeline`` each take the sampling options they need, in their own order and with
their own defaults (``add_sampling_options(p, "steps", "eta", n=30)``); the helpers below turn the parsed
flags back into the library's typed options.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.masks import FLIP_MODES, MASK_MODES

DTYPES = ["float32", "bfloat16", "float16"]
_ON_OFF = {"on": True, "off": False}


def add_data_options(p: argparse.ArgumentParser) -> None:
    """A dataset folder and how its NIfTI volumes are read (``nifti_options`` turns them into NiftiOptions)."""
    p.add_argument("--data", type=Path, required=True, help="dataset folder with images/ and labels/ (and unlabelled/)")
    p.add_argument("--nifti-axis", type=int, default=2, help="axis NIfTI volumes are sliced along (default 2)")
    p.add_argument("--nifti-channel", type=int, default=None, help="channel of 4-D multi-modal volumes (BraTS FLAIR)")
    p.add_argument("--ct-window", type=float, nargs=2, metavar=("CENTER", "WIDTH"), default=None,
                   help="CT window instead of per-volume percentile normalisation")


def nifti_options(args):
    from ..data import NiftiOptions

    window = tuple(args.ct_window) if args.ct_window else None
    return NiftiOptions(axis=args.nifti_axis, channel=args.nifti_channel, window=window)


# name -> (flag, argparse keywords, default); help may use %(default)s
SAMPLING = {
    "n": ("--n", dict(type=int, help="samples per labelled image (default %(default)s)"), 4),
    "steps": ("--steps", dict(type=int, help="DDIM steps (default %(default)s)"), 50),
    "eta": ("--eta", dict(type=float, help="DDIM eta: 1 = Algorithm 1 (default), 0 = deterministic"), 1.0),
    "mask": ("--mask", dict(choices=MASK_MODES, help="known region: box (default), component or label"), "box"),
    "margin": ("--margin", dict(type=int, help="pixels added around each box (default %(default)s)"), 0),
    "flip": ("--flip", dict(choices=FLIP_MODES, help="flip image+label before inpainting: none, horizontal, "
                                                     "vertical, both or random (paper §4.4)"), "none"),
    "seed": ("--seed", dict(type=int, help="unsigned 32-bit seed; fixes every random number"), 0),
    "batch_size": ("--batch-size", dict(type=int), 8),
    "paste_back": ("--paste-back", dict(action="store_true", help="after decoding, paste the source's pixels into "
                                                                   "the known region with a feathered edge"), False),
    "max_classes": ("--max-classes", dict(type=int, help="refuse labels with more classes than this"), 16),
}


def add_sampling_options(p, *names: str, help: dict | None = None, **defaults) -> None:
    """Add the sampling options ``names`` (keys of SAMPLING) to ``p`` in that order; ``defaults`` and ``help``
    (name -> text) replace a command's own default or wording."""
    for name in names:
        flag, kwargs, default = SAMPLING[name]
        kwargs = dict(kwargs, default=defaults.get(name, default))
        if help and name in help:
            kwargs["help"] = help[name]
        if kwargs.get("action") == "store_true":
            del kwargs["default"]
        p.add_argument(flag, **kwargs)


def add_engine_flag(p) -> None:
    """``--engine``; an unknown or unavailable engine is refused by the engines, saying what is available."""
    from ..engines import ENGINES

    p.add_argument("--engine", default="torch", help=f"one of: {', '.join(ENGINES)} (default torch)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The engine and every option of it; an option the chosen engine does not take is refused in one line."""
    g = p.add_argument_group("engine", "how the models run (`augpaint-fast info` lists the engines available here)")
    add_engine_flag(g)
    g.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    g.add_argument("--dtype", default=None, choices=[*DTYPES, "int8"],
                   help="U-Net (and trt encoder) compute dtype (default float32; trt builds float16; int8: openvino, "
                        "after augpaint-fast export --int8)")
    g.add_argument("--autoencoder-dtype", default=None, choices=DTYPES,
                   help="torch: encoder/decoder compute dtype (default float32)")
    g.add_argument("--decoder-dtype", default=None, choices=DTYPES,
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


def add_speed_options(p: argparse.ArgumentParser) -> None:
    """The CPU speed options: feature caching and the torch engine's fast paths (None when not given)."""
    add_cache_interval(p)
    p.add_argument("--fused-norm", choices=sorted(_ON_OFF), default=None,
                   help="torch engine: fused GroupNorm+SiLU kernel (default: on for bfloat16, off for float32)")
    p.add_argument("--flash-attention", choices=sorted(_ON_OFF), default=None,
                   help="torch engine: attention laid out for SDPA's flash kernel (default: on for bfloat16, off "
                        "for float32)")


def add_cache_interval(p, default: int | None = None) -> None:
    """``--cache-interval``: None (not given: the engine's own, off) for ``sample`` and ``serve``."""
    p.add_argument("--cache-interval", type=int, default=default, metavar="N",
                   help="feature caching across steps (DeepCache): a full U-Net call every N steps, the outer blocks "
                        "only in between; 1 = off (default). Changes the samples (see BENCHMARKS.md); torch and "
                        "openvino engines")


# engine flag (dest) -> engine constructor option
ENGINE_FLAGS = {"dtype": "dtype", "device": "device", "engine_cache": "cache_dir",
                "autoencoder_dtype": "autoencoder_dtype", "decoder_dtype": "decoder_dtype",
                "cuda_graphs": "cuda_graphs", "compile": "compile", "channels_last": "channels_last",
                "engine_batch_sizes": "batch_sizes", "threads": "threads"}


def engine_options(args: argparse.Namespace) -> dict:
    """The engine and speed flags given on the command line, under the engines' constructor names. Only
    flags the user gave become options, so an engine that does not take one refuses it only when asked."""
    options = {opt: getattr(args, flag) for flag, opt in ENGINE_FLAGS.items()}
    options["cache_interval"] = getattr(args, "cache_interval", None)
    for flag in ("fused_norm", "flash_attention"):
        value = getattr(args, flag, None)
        options[flag] = _ON_OFF[value] if value is not None else None
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None}


def add_workers_option(p, what: str) -> None:
    """``--workers``: engine processes of one thread each (``job.workers``); None when not given."""
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"{what} on N engines of one thread each, N processes (default: $AUGPAINT_FAST_WORKERS, else "
                        "one per physical core; 1 with --device cuda). 1: one engine of one thread in this process; "
                        "any N gives the same bytes")


def workers_from(args) -> int:
    """The checked ``--workers`` of a command, or its default (``job.workers.default_workers``)."""
    from ..job.workers import check_workers, default_workers

    workers = args.workers if args.workers is not None else default_workers(args.device)
    check_workers(workers)
    return workers


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed", "sharded sampling on Ray (pip install 'augpaint-fast[distributed]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="split the work across Ray workers; without ADDRESS a local Ray is started")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="workers (default: one per GPU with --device cuda, else one per CPU core)")
    g.add_argument("--ray-cpus-per-worker", type=int, default=1, metavar="C",
                   help="CPU cores (torch threads) per CPU worker (default 1)")
