"""The segmentation side: ``train-seg``, ``evaluate``, ``filter``, ``rand-aug`` and ``export-dataset``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.dataset_export import COLORS, FILE_ENDINGS, FORMATS
from ..errors import AugPaintError
from ..segmentation.augment import FLIPS
from .command import Command

_MAX_CLASSES = dict(type=int, default=16, help="refuse labels with more classes than this")


def _train_seg_arguments(p: argparse.ArgumentParser) -> None:
    from ..segmentation.train import DEFAULT_EPOCHS

    p.add_argument("--data", type=Path, action="append", required=True,
                   help="a real dataset folder (images/ + labels/) or a generated folder (sample, rand-aug or "
                        "filter output); repeat to mix several")
    p.add_argument("--out", type=Path, required=True, help="run folder (created; rerunning the command resumes)")
    p.add_argument("--size", type=int, default=64, help="square input size every pair is resized to (default 64; "
                                                        "the paper uses 256)")
    p.add_argument("--channels", type=int, default=64, help="first-stage channels c of (c, 2c, 4c, 8c) (default "
                                                            "64 as the paper; 16 for CPU-sized runs)")
    p.add_argument("--num-res-units", type=int, default=2, help="residual units per U-Net stage (default 2)")
    p.add_argument("--classes", type=int, default=None,
                   help="foreground classes (default: the largest class id in the data)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, help=f"epochs (default {DEFAULT_EPOCHS}, as the paper)")
    length.add_argument("--steps", type=int, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=4, help="global batch (default 4, as the paper)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4, as the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--online-aug", "--augment", dest="augment", default="none", choices=["none", "standard", "light"],
                   help="MONAI augmentation of every pair while training: none (default, as the paper), standard "
                        "(flips along --online-flip, small affine, intensity scale/shift, Gaussian noise) or light "
                        "(small affine + intensity)")
    p.add_argument("--online-flip", default="none", choices=list(FLIPS),
                   help="flip axes of --online-aug standard: none (default: anatomy has a side), vertical, "
                        "horizontal or both (e.g. dermoscopy)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between resumable checkpoints")
    p.add_argument("--max-classes", **_MAX_CLASSES)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available); under torchrun "
                                                  "each process takes GPU LOCAL_RANK")


def _train_seg(args) -> None:
    from ..segmentation.train import train_segmentation
    from ..training.ddp import init_distributed, shutdown

    ctx = init_distributed(args.device)
    try:
        r = train_segmentation(args.data, args.out, size=args.size, channels=args.channels,
                               num_res_units=args.num_res_units, classes=args.classes, epochs=args.epochs,
                               steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               augment=args.augment, online_flip=args.online_flip,
                               checkpoint_every=args.checkpoint_every,
                               max_classes=args.max_classes, ctx=ctx)
        if ctx.is_rank0:
            print(r.line())
    finally:
        shutdown(ctx)


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="a train-seg run folder")
    p.add_argument("--data", type=Path, required=True, help="test folder (images/ + labels/, or a generated folder)")
    p.add_argument("--json", type=Path, default=None, help="also write the full report (per image) to this file")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--max-classes", **_MAX_CLASSES)


def _evaluate(args) -> None:
    from ..atomic import atomic_write_text
    from ..segmentation.evaluate import evaluate

    r = evaluate(args.model, args.data, batch_size=args.batch_size, device=args.device, max_classes=args.max_classes)
    if args.json is not None:
        try:
            atomic_write_text(args.json, json.dumps(r.report, indent=2) + "\n")
        except OSError as e:
            raise AugPaintError(f"cannot write {args.json} ({e.strerror or e})") from None
    print(r.table())
    if args.json is not None:
        print(f"report -> {args.json}")


def _filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=Path, required=True, help="generated folder (sample or rand-aug output)")
    p.add_argument("--model", type=Path, required=True, help="train-seg run trained on the labelled images")
    p.add_argument("--keep", type=float, default=0.5, help="fraction kept (default 0.5, as the paper; round half up)")
    p.add_argument("--per-source", action="store_true", help="keep the fraction of each source's pairs, "
                                                              "not of all pairs")
    p.add_argument("--out", type=Path, default=None, help="kept set folder (default SAMPLES/kept)")
    p.add_argument("--copy", action="store_true", help="copy the kept files instead of linking them")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--max-classes", **_MAX_CLASSES)


def _filter(args) -> None:
    from ..segmentation.filtering import run_filter

    if args.batch_size < 1:
        raise AugPaintError(f"--batch-size must be >= 1, got {args.batch_size}")
    s = run_filter(args.samples, args.model, keep=args.keep, per_source=args.per_source, out=args.out,
                   copy=args.copy, batch_size=args.batch_size, device=args.device, max_classes=args.max_classes)
    print(s.line())


def _rand_aug_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="labelled dataset folder (images/ + labels/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    p.add_argument("--n", type=int, default=5, help="transformed copies per labelled image (default 5, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="unsigned 32-bit seed; fixes every transformation")
    p.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE first (default: keep the source size)")
    p.add_argument("--max-classes", **_MAX_CLASSES)


def _rand_aug(args) -> None:
    from ..segmentation.rand_aug import run_rand_aug

    print(run_rand_aug(args.data, args.out, n=args.n, seed=args.seed, size=args.size,
                       max_classes=args.max_classes).line())


def _export_dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=Path, action="append", default=[],
                   help="generated folder (sample, rand-aug or filter output); repeat for several")
    p.add_argument("--real", type=Path, action="append", default=[],
                   help="real labelled dataset folder to include (images/ + labels/); repeat for several")
    p.add_argument("--format", choices=FORMATS, default="nnunet", help="nnunet (default: nnU-Net v2 raw dataset) "
                                                                        "or folder (images/ + labels/)")
    p.add_argument("--out", type=Path, required=True, help="nnunet: the nnUNet_raw folder (DatasetXXX_NAME is "
                                                           "created in it); folder: the dataset folder")
    p.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id, 1..999 (default 501; custom "
                                                               "datasets should use 500+)")
    p.add_argument("--name", default="AugPaint", help="nnU-Net dataset name (default AugPaint)")
    p.add_argument("--label-names", default=None, help="comma-separated class names for 1..K (default class_<k>)")
    p.add_argument("--classes", type=int, default=None, help="number of foreground classes (default: the largest "
                                                             "class id in the data)")
    p.add_argument("--color", choices=COLORS, default="auto", help="auto (default: greyscale when every image is "
                   "grey, else RGB), grey (mean of the channels) or rgb")
    p.add_argument("--file-ending", choices=FILE_ENDINGS, default=".png", help=".png (default: one 2-D case per "
                   "pair) or .nii.gz (nnunet: generated slices restacked into their source volumes' grids)")
    p.add_argument("--max-classes", **_MAX_CLASSES)


def _export_dataset(args) -> None:
    from ..data.dataset_export import export_dataset

    names = [n.strip() for n in args.label_names.split(",")] if args.label_names else None
    s = export_dataset(args.samples, args.real, args.format, args.out, dataset_id=args.dataset_id, name=args.name,
                       label_names=names, classes=args.classes, color=args.color, max_classes=args.max_classes,
                       file_ending=args.file_ending)
    print(s.line())


COMMANDS = [
    Command("train-seg", "train the MONAI U-Net segmenter on real and generated pairs (torchrun-ready)",
            _train_seg_arguments, _train_seg),
    Command("evaluate", "per-class and mean Dice and HD95 of a segmenter on a test folder", _evaluate_arguments,
            _evaluate),
    Command("filter", "keep the generated pairs a segmenter is most confident about (paper §3.3)",
            _filter_arguments, _filter),
    Command("rand-aug", "the Rand Aug baseline: random MONAI transformations of each labelled pair",
            _rand_aug_arguments, _rand_aug),
    Command("export-dataset", "write generated (and real) pairs as an nnU-Net v2 raw dataset or plain folders",
            _export_dataset_arguments, _export_dataset),
]
