"""``bench``: AugPaint's engines against the eager loop, RePaint and the machine's dense peak."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .command import Command


def _arguments(p: argparse.ArgumentParser) -> None:
    from ..bench.configs import CONFIGS

    p.add_argument("--out", type=Path, default=Path("bench_out"),
                   help="folder for bench.json, bench.md and bench.png (default bench_out)")
    p.add_argument("--json", type=Path, default=None, help="write the JSON records here instead of OUT/bench.json")
    p.add_argument("--quick", action="store_true",
                   help="a check that everything runs, in under a minute on a 2-core CPU: tiny preset, batch 1, "
                        "two repeats, 10 timed AugPaint calls, 3 RePaint calls, 2 quality samples (flags given "
                        "explicitly still win); not for results")
    p.add_argument("--preset", default=None, help="model preset timed (random weights): tiny, small (default on "
                   "CPU) or paper (default on CUDA)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 4")
    p.add_argument("--steps", type=int, default=50, help="sampling steps S (default 50)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats after the warm-up, AugPaint and RePaint interleaved (default 5)")
    p.add_argument("--timed-steps", type=int, default=None,
                   help="time only the first N of the S calls of AugPaint and the eager loop, scaled to S (default: "
                        "all; e.g. 5 for the paper preset on a CPU)")
    p.add_argument("--repaint-timed-calls", type=int, default=None,
                   help="RePaint reverse steps (and as many forward jumps) timed per repeat, spread evenly over the "
                        "run and scaled; at least the run's calls: whole runs (default 30)")
    p.add_argument("--jump-length", type=int, default=10, help="RePaint jump length (default 10)")
    p.add_argument("--jump-n-sample", type=int, default=5, help="RePaint resamplings per jump (default 5)")
    p.add_argument("--configs", nargs="+", default=None,
                   help=f"engine configurations: labels ({', '.join(c.label for c in CONFIGS)}) or "
                        f"ENGINE:KEY=VALUE,...; workers=N runs N one-thread engines at once (default: the default "
                        f"ones available here)")
    p.add_argument("--combined", action="store_true",
                   help="with the default configurations, also the combined ones: openvino int8 (its int8 exports "
                        "calibrated first on the bench's own sampling runs and cached; needs the [int8] extra), int8 "
                        "+ feature caching, and one-thread engines per core in bf16, int8, and with caching")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: theirs)")
    p.add_argument("--engine-cache", type=Path, default=None, help="where onnx/trt exports are cached")
    p.add_argument("--no-pixel", action="store_true", help="skip pixel-space RePaint")
    p.add_argument("--no-quality", action="store_true", help="skip the quality runs on trained weights")
    p.add_argument("--weights", type=Path, default=None,
                   help="trained weights folder for the quality figures (default: the shipped tiny weights)")


def settings_from_args(args):
    """The run ``args`` asks for (``bench.suite.Settings``); ``--quick`` fills in the flags not given."""
    import torch

    from ..bench.command import QUICK
    from ..bench.configs import parse_config
    from ..bench.suite import Settings

    device = args.device or "cpu"
    quick = QUICK if args.quick else {}
    default = Settings()

    def pick(value, key):
        return value if value is not None else quick.get(key, getattr(default, key))

    cuda = torch.device(device).type == "cuda"
    return Settings(
        preset=args.preset or quick.get("preset", "paper" if cuda else "small"),
        batch_sizes=tuple(pick(args.batch_sizes, "batch_sizes")),
        steps=args.steps,
        repeats=pick(args.repeats, "repeats"),
        timed_steps=pick(args.timed_steps, "timed_steps"),
        repaint_timed_calls=pick(args.repaint_timed_calls, "repaint_timed_calls"),
        peak_repeats=quick.get("peak_repeats", default.peak_repeats),
        jump_length=args.jump_length,
        jump_n_sample=args.jump_n_sample,
        device=device,
        threads=args.threads,
        configs=[parse_config(c) for c in args.configs] if args.configs else None,
        combined=args.combined,
        engine_cache=args.engine_cache,
        pixel=not args.no_pixel,
        quality=not args.no_quality,
        weights=args.weights,
        quality_sources=quick.get("quality_sources", default.quality_sources),
        command=command_line(args),
    )


def command_line(args) -> str:
    """The ``augpaint-fast bench`` command that reproduces ``args`` (the flags given, in a fixed order)."""
    parser = argparse.ArgumentParser()
    _arguments(parser)
    words = ["augpaint-fast", "bench"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or value == action.default:
            continue
        words.append(action.option_strings[0])
        if value is not True:
            words += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return shlex.join(words)


def _bench(args) -> None:
    from ..bench.command import run_bench_to

    run_bench_to(settings_from_args(args), args.out, args.json)


BENCH = Command("bench", "time AugPaint's engines against the eager loop, RePaint and the machine's dense peak; "
                "writes JSON, a Markdown table and a plot", _arguments, _bench)
