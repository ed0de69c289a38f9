"""``pipeline``: the whole method over splits of labelled cases, with the paper's baselines."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..pipeline.run import BUDGETS, METHODS, ONLINE_AUGS
from ..segmentation.augment import FLIPS
from .command import Command
from .options import add_cache_interval, add_engine_flag, add_sampling_options


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="training folder: images/, labels/, unlabelled/")
    p.add_argument("--test", type=Path, required=True, help="held-out test folder (images/ + labels/)")
    p.add_argument("--out", type=Path, required=True, help="run folder (created; reruns resume)")
    p.add_argument("--labelled", type=int, nargs="+", default=[1, 2, 5], help="numbers of labelled cases")
    p.add_argument("--splits", type=int, default=5, help="independent choices of the labelled cases (default 5: "
                                                         "the verdict's interval is paired over them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=Path, default=None, help="cases.json (default: DATA/cases.json if present)")
    p.add_argument("--case-pattern", default=None, help="regex on image ids giving the case (named group 'case')")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"of: {', '.join(METHODS)}")
    p.add_argument("--budget", nargs="+", default=list(BUDGETS), choices=BUDGETS, help="epochs and/or steps")
    p.add_argument("--weights", type=Path, default=None, help="trained autoencoder + U-Net(s): skip training them")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--ae-steps", type=int, default=2000)
    p.add_argument("--ldm-steps", type=int, default=3000)
    p.add_argument("--ldm-flip-augment", action="store_true")
    add_sampling_options(p, "n", "steps", "mask", "margin", "paste_back", n=30,
                         help={"n": "AugPaint samples per labelled image (default %(default)s)"})
    p.add_argument("--rand-aug-n", type=int, default=5)
    p.add_argument("--keep", type=float, default=0.5, help="fraction the filter keeps (default 0.5)")
    p.add_argument("--per-source-filter", action="store_true", help="keep the top fraction of each source")
    p.add_argument("--real-repeat", type=int, default=1,
                   help="each real pair this many times per epoch beside the generated ones (default 1)")
    p.add_argument("--online-aug", default="standard", choices=ONLINE_AUGS,
                   help="online augmentation of every segmenter but unet-noaug (default standard: flips along "
                        "--online-flip, small affine, intensity, noise)")
    p.add_argument("--online-flip", default="none", choices=list(FLIPS),
                   help="flip axes of the online augmentation (default none: anatomy has a side; both for "
                        "dermoscopy)")
    _segmenter_arguments(p)
    add_engine_flag(p)
    add_cache_interval(p, default=1)
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "int8"],
                   help="the U-Net's dtype while sampling (default float32; int8: --engine openvino, --weights "
                        "after export --int8), to measure its effect downstream")


def _segmenter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seg-size", type=int, default=64)
    p.add_argument("--seg-channels", type=int, default=16, help="first-stage channels (paper 64)")
    p.add_argument("--seg-epochs", type=float, default=120.0, help="epochs (paper 120); see --budget")
    p.add_argument("--seg-batch-size", type=int, default=4)
    p.add_argument("--seg-lr", type=float, default=5e-4)


def _options(args):
    from ..pipeline.run import PipelineOptions

    return PipelineOptions(data=args.data, test=args.test, out=args.out, labelled=tuple(args.labelled),
                           splits=args.splits, seed=args.seed, cases_file=args.cases, case_pattern=args.case_pattern,
                           methods=tuple(args.methods), budgets=tuple(args.budget), weights=args.weights,
                           preset=args.preset, ae_steps=args.ae_steps, ldm_steps=args.ldm_steps,
                           ldm_flip_augment=args.ldm_flip_augment, n=args.n, steps=args.steps, mask=args.mask,
                           margin=args.margin, paste_back=args.paste_back, rand_aug_n=args.rand_aug_n, keep=args.keep,
                           per_source_filter=args.per_source_filter, real_repeat=args.real_repeat,
                           online_aug=args.online_aug, online_flip=args.online_flip, seg_size=args.seg_size,
                           seg_channels=args.seg_channels, seg_epochs=args.seg_epochs,
                           seg_batch_size=args.seg_batch_size, seg_lr=args.seg_lr, engine=args.engine,
                           cache_interval=args.cache_interval, dtype=args.dtype)


def _pipeline(args) -> None:
    from ..pipeline.run import run_pipeline

    results = run_pipeline(_options(args))
    print(results["markdown"])
    print(f"-> {Path(args.out) / 'results.md'}, {Path(args.out) / 'results.json'}")
    print("\n".join(results["verdict"]))


PIPELINE = Command("pipeline", "the whole method: AE, LDM, sample, filter, train-seg, evaluate, over splits of "
                   "labelled cases, with the paper's baselines (results table)", _arguments, _pipeline)
