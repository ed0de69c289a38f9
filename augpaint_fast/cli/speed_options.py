"""``augpaint-fast sample`` flags of the CPU speed options: feature caching and the torch engine's fast paths.

Wire into ``augpaint_fast/cli/main.py`` with::

    from ..engines.engines.cli_options import add_speed_args, speed_options
    add_speed_args(s)                      # the `sample` subparser
    options.update(speed_options(args))    # in _engine_options

Only flags the user gave become engine options, so engines that do not take one (e.g. ``--cache-interval`` on
trt) are reached only when asked, and then refuse it with one line (``create_engine``).
"""
from __future__ import annotations

import argparse

_ON_OFF = {"on": True, "off": False}


def add_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-interval", type=int, default=None, metavar="N",
                   help="feature caching across steps (DeepCache): a full U-Net call every N steps, the outer blocks "
                        "only in between; 1 = off (default). Changes the samples (see BENCHMARKS.md); torch and "
                        "openvino engines")
    p.add_argument("--fused-norm", choices=sorted(_ON_OFF), default=None,
                   help="torch engine: fused GroupNorm+SiLU kernel (default: on for bfloat16, off for float32)")
    p.add_argument("--flash-attention", choices=sorted(_ON_OFF), default=None,
                   help="torch engine: attention laid out for SDPA's flash kernel (default: on for bfloat16, off "
                        "for float32)")


def speed_options(args: argparse.Namespace) -> dict:
    """The speed flags given on the command line, under the engines' constructor names."""
    options = {}
    if getattr(args, "cache_interval", None) is not None:
        options["cache_interval"] = args.cache_interval
    for flag in ("fused_norm", "flash_attention"):
        if getattr(args, flag, None) is not None:
            options[flag] = _ON_OFF[getattr(args, flag)]
    return options
