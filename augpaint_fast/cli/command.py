"""One way to declare a subcommand: a :class:`Command` (name, help, its arguments, what it runs).

Each ``cli/<group>.py`` module lists its commands in ``COMMANDS``; ``cli/main.py`` builds the parser from them
in order. ``run(args)`` returns an exit status or None (0).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

PROG = "augpaint-fast"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], "int | None"]
    description: str | None = None


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``augpaint-fast: error: <message>`` (exit 2), without the
    usage block; ``--help`` is unchanged. Subcommand parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser(commands: list[Command], description: str) -> Parser:
    """The top-level parser with one subparser per command; the chosen one's Command lands in ``args.run``."""
    parser = Parser(prog=PROG, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser
