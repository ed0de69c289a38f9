"""One method in two pipeline runs over the same splits: the Dice (and HD95) difference, paired over splits.

    python examples/compare_runs.py RUN_A RUN_B [--method augpaint] [--budget steps]

Two runs of ``augpaint-fast pipeline`` on the same data and seed choose the same labelled cases in each split,
so a knob that one run changed (``--dtype int8 --cache-interval 3``, ``--real-repeat 15``, ``--paste-back``,
...) is judged like the pipeline judges a method against its baseline: by the per-split differences
``B_s - A_s``, their mean and 95% Student t interval (``augpaint_fast.pipeline.stats.paired_difference``).
Only (labelled count, split) pairs present in both ``results.json`` files are compared, and both runs must
have chosen the same cases for each (else the pairing means nothing: one line and exit 1). Prints one
Markdown table; reads nothing but the two ``results.json`` files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from augpaint_fast.pipeline.stats import paired_difference


def _records(run: Path, method: str, budget: str) -> dict[tuple[int, int], dict]:
    """(labelled count, split) -> the run's results record of ``method`` at ``budget``."""
    path = run / "results.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist (has the pipeline finished?)")
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return {(r["labelled"], r["split"]): r for r in runs if r["method"] == method and r["budget"] == budget}


def compare(run_a: Path, run_b: Path, method: str, budget: str) -> list[str]:
    """Markdown lines: per labelled count, both runs' mean Dice and the paired difference B - A (Dice, HD95)."""
    a, b = _records(run_a, method, budget), _records(run_b, method, budget)
    both = sorted(set(a) & set(b))
    if not both:
        raise SystemExit(f"error: no (labelled count, split) of {method} at budget {budget} is in both runs")
    for key in both:
        if a[key]["cases"] != b[key]["cases"]:
            raise SystemExit(f"error: split {key[1]} with {key[0]} labelled chose other cases in the two runs "
                             f"({a[key]['cases']} vs {b[key]['cases']}): nothing to pair")
    lines = [f"| {method}, {budget} budget | splits | Dice A | Dice B | B - A, Dice points [95% t] | "
             f"B - A, HD95 px [95% t] |", "|---|---|---|---|---|---|"]
    for k in sorted({key[0] for key in both}):
        keys = [key for key in both if key[0] == k]
        da, db = [a[key]["dice"] * 100 for key in keys], [b[key]["dice"] * 100 for key in keys]
        ha, hb = [a[key]["hd95"] for key in keys], [b[key]["hd95"] for key in keys]
        lines.append(f"| {k} labelled | {len(keys)} | {sum(da) / len(da):.1f} | {sum(db) / len(db):.1f} | "
                     f"{paired_difference(db, da).text()} | {paired_difference(hb, ha).text()} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)
    p.add_argument("--method", default="augpaint", help="the method compared (default augpaint)")
    p.add_argument("--budget", default="steps", choices=["steps", "epochs"], help="default steps")
    args = p.parse_args(argv)
    print("\n".join(compare(args.run_a, args.run_b, args.method, args.budget)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
