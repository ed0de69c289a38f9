"""Argument checks every command runs before it creates or changes a file: one helper per idea.

Each raises :class:`~augpaint_fast.errors.AugPaintError` with one line naming the argument (``name``: a
parameter such as ``"margin"``, which the command line shows as its flag, or a flag such as ``"--out"``) and the
value it got, so a command can check all of its arguments up front, before any work.
"""
from __future__ import annotations

import math
from pathlib import Path

from .errors import AugPaintError


def in_range(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """``low <= value <= high`` (either bound may be None), and finite: NaN and inf are refused."""
    if value is None:
        raise AugPaintError(f"{name} is required", param=name)
    bounds = (f"between {low} and {high}" if low is not None and high is not None
              else f">= {low}" if low is not None else f"<= {high}" if high is not None else "finite")
    _finite_and(name, value, (low is None or value >= low) and (high is None or value <= high), bounds)


def input_folder(name: str, path: Path | str) -> Path:
    """An existing folder to read from."""
    path = Path(path)
    if not path.exists():
        raise AugPaintError(f"{name} {path} does not exist", param=name)
    if not path.is_dir():
        raise AugPaintError(f"{name} {path} is not a folder", param=name)
    return path


def input_file(name: str, path: Path | str) -> Path:
    """An existing regular file to read from."""
    path = Path(path)
    if not path.exists():
        raise AugPaintError(f"{name} {path} does not exist", param=name)
    if not path.is_file():
        raise AugPaintError(f"{name} {path} is not a file", param=name)
    return path


def output_folder(name: str, path: Path | str) -> Path:
    """A folder to write into: it may exist (as a folder) or not; nothing on its path may be a file.

    Nothing is created here; a folder that cannot be created or written is reported by whoever creates it.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "exists and is not a folder" if p == path else f"is inside {p}, which is a file"
                raise AugPaintError(f"{name} {path} {what}", param=name)
            break
    return path


def positive(name: str, value: float) -> None:
    """``value > 0`` and finite (learning rates, epochs); None is refused as not a number."""
    _finite_and(name, value, value is not None and value > 0, "a finite number > 0")


def _finite_and(name: str, value: float | None, ok: bool, what: str) -> None:
    """Refuse ``value`` unless ``ok`` and finite (NaN fails every comparison; inf passes them, not this), in the
    one shape of a number check: "NAME must be WHAT, got VALUE"."""
    if not (ok and math.isfinite(value)):
        raise AugPaintError(f"{name} must be {what}, got {value}", param=name)
