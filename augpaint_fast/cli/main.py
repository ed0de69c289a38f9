"""The ``augpaint-fast`` command line.

Every error the user can cause is printed as one line, ``augpaint-fast: error: <what and where>``, with exit
status 2 (argument errors too, without the usage block); an interrupted run says how to resume (rerun the same
command) and exits with 130. Each subcommand is a :class:`~augpaint_fast.cli.command.Command` declared in its
group's module; ``COMMANDS`` lists them in the order ``--help`` shows.
"""
from __future__ import annotations

import sys

from ..errors import AugPaintError
from . import bench, export, pipeline, sample, segmentation, serve, train
from .command import Command, Parser, build_parser
from .errors import error_line
from .options import engine_options

DESCRIPTION = "AugPaint: inpainting-based augmentation for few-label medical image segmentation."


def commands() -> list[Command]:
    return [sample.SAMPLE, train.TRAIN_AE, train.TRAIN_LDM, sample.PHANTOM, export.EXPORT, bench.BENCH,
            serve.SERVE, *segmentation.COMMANDS, pipeline.PIPELINE, export.IMPORT_WEIGHTS, sample.INFO, sample.DEMO]


def _parser() -> Parser:
    return build_parser(commands(), DESCRIPTION)


_engine_options = engine_options  # the name the CLI tests use


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status = args.run(args)
    except AugPaintError as exc:
        print(f"augpaint-fast: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("augpaint-fast: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
