"""Every subcommand keeps its flags, defaults and choices.

The snapshot ``help_options.json`` lists, for the top-level parser and each subcommand, every option's strings,
default, choices, nargs and whether it is required. Rewrite it deliberately, after a change that means to alter
the command line, with ``UPDATE_HELP_SNAPSHOT=1 pytest tests/cli/test_help_options.py``.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import augpaint_fast
from augpaint_fast.cli.main import _parser

PACKAGE = Path(augpaint_fast.__file__).parent
SNAPSHOT = Path(__file__).with_name("help_options.json")


def _jsonable(value):
    """Defaults as JSON: paths as strings (the package's own relative to it), tuples as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return f"<augpaint_fast>/{value.relative_to(PACKAGE)}" if value.is_relative_to(PACKAGE) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise TypeError(f"no JSON form for default {value!r}")


def _options(parser: argparse.ArgumentParser) -> list[dict]:
    """The parser's options (positionals included), in declaration order, without the help action."""
    out = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        out.append({"flags": list(action.option_strings) or [action.dest], "dest": action.dest,
                    "default": _jsonable(action.default), "required": action.required,
                    "choices": _jsonable(list(action.choices)) if action.choices is not None else None,
                    "nargs": _jsonable(action.nargs), "action": type(action).__name__})
    return out


def help_options() -> dict:
    """{"": top-level options, "<command>": its options} for the live ``augpaint-fast`` parser."""
    parser = _parser()
    tree = {"": _options(parser)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                tree[name] = _options(sub)
    return tree


def test_every_flag_default_and_choice_is_unchanged():
    live = help_options()
    if os.environ.get("UPDATE_HELP_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    assert live == json.loads(SNAPSHOT.read_text())
