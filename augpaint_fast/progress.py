"""Progress bars that suit both a terminal and a log file.

On a terminal: a live tqdm bar. When stderr is not a terminal (a batch job's log, CI): the same bar, redrawn at
most every ``LOG_INTERVAL_S`` seconds, so a long run leaves a readable trail of progress lines instead of
thousands of carriage returns.
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


def progress(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``enabled`` is False, throttled when stderr is not a terminal."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("ascii", True)
    return tqdm(iterable, disable=not enabled, **kwargs)
