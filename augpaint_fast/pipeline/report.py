"""The pipeline's results: ``results.json`` (every run) and ``results.md`` (method x number of labelled cases,
mean ± std over splits, Dice in % and HD95 in pixels at the segmenter's size, per budget; seconds per stage)."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_write_text

LABELS = {"unet": "U-Net (labelled only)", "rand-aug": "Rand Aug", "cond-augpaint": "cond AugPaint",
          "augpaint": "AugPaint", "augpaint-flip": "AugPaint + flipped masks"}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(records: list[dict]) -> list[dict]:
    """One row per (budget, method, k): mean ± std over splits of the mean-over-classes Dice and HD95."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["budget"], r["method"], r["labelled"]), []).append(r)
    rows = []
    for (budget, method, k), rs in sorted(groups.items()):
        d, ds = _mean_std([100.0 * r["dice"] for r in rs])
        h, hs = _mean_std([r["hd95"] for r in rs])
        rows.append({"budget": budget, "method": method, "labelled": k, "splits": len(rs), "dice_mean": d,
                     "dice_std": ds, "hd95_mean": h, "hd95_std": hs, "steps": sorted({r["steps"] for r in rs})})
    return rows


def markdown(rows: list[dict], timings: dict[str, float], methods, budgets) -> str:
    ks = sorted({r["labelled"] for r in rows})
    cell = {(r["budget"], r["method"], r["labelled"]): r for r in rows}
    out = []
    for budget in budgets:
        title = ("matched optimizer steps (every method as many steps as the largest set at the epoch budget)"
                 if budget == "steps" else "matched epochs (each method its own set's epochs)")
        out.append(f"**{title}** — Dice % / HD95 px, mean ± std over splits\n")
        out.append("| method | " + " | ".join(f"{k} labelled" for k in ks) + " |")
        out.append("|---|" + "---|" * len(ks))
        for m in methods:
            cells = []
            for k in ks:
                r = cell.get((budget, m, k))
                cells.append("—" if r is None else f"{r['dice_mean']:.1f} ± {r['dice_std']:.1f} / "
                                                   f"{r['hd95_mean']:.1f} ± {r['hd95_std']:.1f}")
            out.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        out.append("")
    if timings:
        out.append("| stage | seconds (all splits) |")
        out.append("|---|---|")
        for name, s in timings.items():
            out.append(f"| {name} | {s:.0f} |")
    return "\n".join(out) + "\n"


def write_results(run: Path, opts, records: list[dict], timings: dict[str, float]) -> dict:
    rows = summarise(records)
    md = markdown(rows, timings, [m for m in opts.methods], list(opts.budgets))
    results = {"options": json.loads(json.dumps(asdict(opts), default=str)), "summary": rows, "runs": records,
               "seconds": timings, "markdown": md}
    atomic_write_text(Path(run) / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(Path(run) / "results.md", md)
    return results
