"""CLI registration of the segmentation-side commands: ``train-seg``, ``evaluate``, ``filter``, ``rand-aug``,
``export-dataset``. Each module owns its ``add_*_args(parser)`` and ``*_command(args)``; this table wires them::

    add_segmentation_commands(subparsers)   # in augpaint_fast.cli.main; the handler lands in args.handler
"""
from __future__ import annotations

import argparse

from ..data.dataset_export import add_export_dataset_args, export_dataset_command
from .evaluate import add_evaluate_args, evaluate_command
from .filtering import add_filter_args, filter_command
from .rand_aug import add_rand_aug_args, rand_aug_command
from .train import add_train_seg_args, train_seg_command

COMMANDS = {
    "train-seg": ("train the MONAI U-Net segmenter on real and generated pairs (torchrun-ready)",
                  add_train_seg_args, train_seg_command),
    "evaluate": ("per-class and mean Dice and HD95 of a segmenter on a test folder", add_evaluate_args,
                 evaluate_command),
    "filter": ("keep the generated pairs a segmenter is most confident about (paper §3.3)", add_filter_args,
               filter_command),
    "rand-aug": ("the Rand Aug baseline: random MONAI transformations of each labelled pair", add_rand_aug_args,
                 rand_aug_command),
    "export-dataset": ("write generated (and real) pairs as an nnU-Net v2 raw dataset or plain folders",
                       add_export_dataset_args, export_dataset_command),
}


def add_segmentation_commands(sub: argparse._SubParsersAction) -> None:
    """Add the commands above to ``sub``; each parser's ``handler`` default is its command function."""
    for name, (help_text, add_args, command) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(handler=command)
