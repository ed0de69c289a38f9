"""The pipeline's results: ``results.json`` (every run), ``results.md`` (method x number of labelled cases,
mean ± std over splits, Dice in % and HD95 in pixels at the segmenter's size, per budget; seconds per stage)
and ``results.png`` (Dice against the number of labelled cases per method and budget, with the spread over
splits; written when matplotlib is installed, e.g. with the ``seg`` extra)."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_write, atomic_write_text

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


def plot(rows: list[dict], methods, budgets, path: Path) -> Path | None:
    """Dice (mean ± std over splits) against labelled cases, one panel per budget; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4), squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        for m in methods:
            pts = sorted((r["labelled"], r["dice_mean"], r["dice_std"]) for r in rows
                         if r["budget"] == budget and r["method"] == m)
            if pts:
                k, d, e = zip(*pts)
                ax.errorbar(k, d, yerr=e, marker="o", capsize=3, label=LABELS.get(m, m))
        ax.set_title("matched optimizer steps" if budget == "steps" else "matched epochs")
        ax.set_xlabel("labelled cases")
        ax.set_xscale("log")
        ks = sorted({r["labelled"] for r in rows})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()  # a log axis would also label 3x10^0, 4x10^0 between the labelled counts
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Dice % (mean over classes, test set)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def write_results(run: Path, opts, records: list[dict], timings: dict[str, float]) -> dict:
    rows = summarise(records)
    plot(rows, list(opts.methods), list(opts.budgets), Path(run) / "results.png")
    md = markdown(rows, timings, [m for m in opts.methods], list(opts.budgets))
    results = {"options": json.loads(json.dumps(asdict(opts), default=str)), "summary": rows, "runs": records,
               "seconds": timings, "markdown": md}
    atomic_write_text(Path(run) / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(Path(run) / "results.md", md)
    return results
