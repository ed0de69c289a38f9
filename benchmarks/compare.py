"""`make bench-compare`: a fresh pytest-benchmark run held against the saved one, by RATIOS between
configurations measured in the same run, never by absolute times (these machines are shared: a busy neighbour
slows every configuration alike, the ratio stays).

    python benchmarks/compare.py benchmarks/baseline/cpu.json build/bench/fresh.json --threshold 0.5

Per ratio in ``RATIOS`` (numerator / denominator, each a benchmark's minimum time, in whatever timer the runs
used: process CPU time in `make bench-compare`; interference only adds time, so the minimum is the least disturbed): saved, fresh, and fresh / saved. A ratio fails when fresh / saved
leaves [1 / (1 + threshold), 1 + threshold], or when the fresh run lacks a benchmark the saved ratio needs.
Exit status 1 with one line per failure; a ratio the saved run lacks is listed as not compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_THRESHOLD = 0.5  # fresh / saved within [1/1.5, 1.5] (a quiet machine's drift is far smaller; see BENCHMARKS.md)

# name -> (numerator, denominator): pytest-benchmark names from benchmarks/bench_fused_step.py and bench_configs.py
RATIOS: dict[str, tuple[str, str]] = {
    **{f"fused step {size}: reference / C++": (f"test_fused_step[ref-{size}]", f"test_fused_step[cpp-{size}]")
       for size in ("small", "paper")},
    **{f"fused step {size}: C++ / unfused torch (noise pre-drawn)":
       (f"test_fused_step[cpp-{size}]", f"test_fused_step[torch_pregen-{size}]") for size in ("small", "paper")},
    # (not openvino-fp32: its single call's minimum moved 5x between two runs minutes apart on the busy VM)
    "U-Net call: onnx-fp32 / torch-fp32": ("test_unet_call[onnx-fp32]", "test_unet_call[torch-fp32]"),
}


def minimums(run: dict) -> dict[str, float]:
    """{benchmark name: its minimum seconds} of a ``--benchmark-json`` file's contents."""
    return {b["name"]: b["stats"]["min"] for b in run["benchmarks"]}


def ratios(run: dict) -> dict[str, float]:
    """The ``RATIOS`` whose two benchmarks ``run`` has."""
    t = minimums(run)
    return {name: t[a] / t[b] for name, (a, b) in RATIOS.items() if a in t and b in t}


def compare(saved: dict, fresh: dict, threshold: float = DEFAULT_THRESHOLD) -> tuple[list[dict], list[str]]:
    """(one row per ratio, the failures as sentences)."""
    old, new = ratios(saved), ratios(fresh)
    rows, failures = [], []
    for name in RATIOS:
        row = {"ratio": name, "saved": old.get(name), "fresh": new.get(name), "change": None, "status": "ok"}
        if name not in old:
            row["status"] = "not compared (not in the saved run)"
        elif name not in new:
            row["status"] = "FAIL"
            failures.append(f"{name}: not measured in the fresh run (saved {old[name]:.3f}); "
                            f"benchmarks {' and '.join(RATIOS[name])} needed")
        else:
            row["change"] = new[name] / old[name]
            if not 1 / (1 + threshold) <= row["change"] <= 1 + threshold:
                row["status"] = "FAIL"
                failures.append(f"{name}: {new[name]:.3f} now vs {old[name]:.3f} saved, x{row['change']:.2f}, "
                                f"past the threshold (x{1 / (1 + threshold):.2f} to x{1 + threshold:.2f})")
        rows.append(row)
    return rows, failures


def table(rows: list[dict], threshold: float) -> str:
    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    lines = [f"ratios of minimum times, fresh vs saved; threshold: fresh / saved within x{1 / (1 + threshold):.2f}"
             f" to x{1 + threshold:.2f}", "", "| ratio | saved | fresh | fresh / saved | status |", "|---|---|---|---|---|"]
    lines += [f"| {r['ratio']} | {f(r['saved'])} | {f(r['fresh'])} | {f(r['change'], '.2f')} | {r['status']} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("saved", type=Path, help="the committed --benchmark-json (benchmarks/baseline/cpu.json)")
    ap.add_argument("fresh", type=Path, help="the fresh run's --benchmark-json")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                    help=f"allowed relative change of a ratio (default {DEFAULT_THRESHOLD})")
    args = ap.parse_args(argv)
    saved, fresh = (json.loads(p.read_text(encoding="utf-8")) for p in (args.saved, args.fresh))
    rows, failures = compare(saved, fresh, args.threshold)
    print(table(rows, args.threshold))
    if failures:
        print(f"\nbench-compare: {len(failures)} ratio(s) moved past the threshold against {args.saved}:",
              *failures, sep="\n  ")
        return 1
    print(f"\nbench-compare: every ratio within the threshold of {args.saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
