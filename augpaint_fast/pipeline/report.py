"""The pipeline's results: ``results.json`` (every run), ``results.md`` and ``results.png``.

``results.md`` opens with the verdict, one line per number of labelled cases (:mod:`.stats`): the best
AugPaint-family method against the best non-generative baseline (``unet-noaug``, ``unet``, ``rand-aug``), at
matched optimizer steps when that budget was run; then how much of the labelled images the known region covers
(AugPaint varies only the rest: a large share is a reason it may not help). Then method x number of labelled cases, mean ± std over
splits, Dice in % and HD95 in pixels at the segmenter's size, per budget; each method's paired difference to
the best non-generative baseline with its 95% interval; and the wall time of each kind of stage (a stage done
by an earlier run keeps the time it took then; with ``--weights`` no generator is trained here).
``results.png``: Dice against the number of labelled cases per method and budget, with the spread over
splits; written when matplotlib is installed, e.g. with the ``seg`` extra."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_write, atomic_write_text
from ..host import missing
from .stats import paired_difference, verdict

LABELS = {"unet-noaug": "U-Net (labelled only)", "unet": "U-Net (labelled)", "rand-aug": "Rand Aug",
          "cond-augpaint": "cond AugPaint", "augpaint": "AugPaint", "augpaint-flip": "AugPaint + flipped masks",
          "augpaint+rand-aug": "AugPaint + Rand Aug"}
BASELINES = ("unet-noaug", "unet", "rand-aug")  # the non-generative methods
GENERATORS = ("train autoencoder", "train LDM", "train conditional LDM")  # stage kinds, trained once per run


def label(method: str, online_aug: str = "none") -> str:
    """The table's name of ``method``; every segmenter but unet-noaug has the online augmentation when it is on."""
    name = LABELS.get(method, method)
    if method == "unet" and online_aug == "none":
        return "U-Net (labelled only)"
    return name if online_aug == "none" or method == "unet-noaug" else f"{name} + online aug"


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


def verdict_budget(budgets) -> str:
    """The budget the verdict and the paired differences use: matched steps (the fair one) when it was run."""
    return "steps" if "steps" in budgets else "epochs"


def paired(records: list[dict], budget: str) -> list[dict]:
    """Per k: the best non-generative baseline (by mean Dice over splits) and every method's paired difference
    to it in Dice points (``diff``: a :class:`~.stats.PairedDiff`), over the splits both have."""
    dice: dict[tuple[int, str], dict[int, float]] = {}
    for r in records:
        if r["budget"] == budget:
            dice.setdefault((r["labelled"], r["method"]), {})[r["split"]] = 100.0 * r["dice"]
    out = []
    for k in sorted({k for k, _ in dice}):
        base = [m for m in BASELINES if (k, m) in dice]
        if not base:
            continue
        best = max(base, key=lambda m: statistics.fmean(dice[(k, m)].values()))
        for (kk, m), by_split in dice.items():
            if kk == k and m != best:
                splits = sorted(set(by_split) & set(dice[(k, best)]))
                diff = paired_difference([by_split[s] for s in splits], [dice[(k, best)][s] for s in splits])
                out.append({"labelled": k, "method": m, "baseline": best, "mean": statistics.fmean(by_split.values()),
                            "diff": diff})
    return out


def verdicts(pairs: list[dict], online_aug: str) -> list[str]:
    """One line per k: the best AugPaint-family method (by mean Dice) against the best baseline (:func:`verdict`)."""
    lines = []
    for k in sorted({p["labelled"] for p in pairs}):
        gen = [p for p in pairs if p["labelled"] == k and p["method"] not in BASELINES]
        if not gen:
            continue
        best = max(gen, key=lambda p: p["mean"])
        lines.append(verdict(k, label(best["method"], online_aug), label(best["baseline"], online_aug), best["diff"]))
    return lines


def known_region(records: list[dict]) -> dict[int, dict]:
    """Per k: mean, min and max over splits of the labelled images' share inside the known region (what
    AugPaint keeps from its source; records without it, from runs before it was recorded, are skipped)."""
    per_split = {(r["labelled"], r["split"]): r["known_fraction"] for r in records if "known_fraction" in r}
    out = {}
    for k in sorted({k for k, _ in per_split}):
        values = [v for (kk, _), v in per_split.items() if kk == k]
        out[k] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    return out


def known_region_line(k: int, share: dict, mask: str) -> str:
    """One line: how much of the labelled images the known region covers, so what AugPaint can vary."""
    return (f"{k} labelled: the known region (mask {mask}) covers {100 * share['mean']:.0f}% of the labelled "
            f"images ({100 * share['min']:.0f}-{100 * share['max']:.0f}% over splits); AugPaint generates only the "
            f"other {100 * (1 - share['mean']):.0f}%")


def stage_seconds(used: dict) -> dict[str, float]:
    """Wall seconds per kind of stage (generators, then per split stages summed over splits), from the stage
    results of this run (:attr:`.stages.Stages.used`, each with its ``kind``)."""
    out: dict[str, float] = {}
    for name, st in used.items():
        kind = st.kind or name
        out[kind] = out.get(kind, 0.0) + st.seconds
    order = [*GENERATORS, "labelled folders"]
    ranked = sorted(out, key=lambda k: (order.index(k) if k in order else len(order), k.startswith("evaluate")))
    return {k: round(out[k], 2) for k in ranked}


def markdown(rows: list[dict], timings: dict[str, float], methods, budgets, pairs: list[dict] = (),
             verdict_lines: list[str] = (), online_aug: str = "none", known_lines: list[str] = ()) -> str:
    ks = sorted({r["labelled"] for r in rows})
    cell = {(r["budget"], r["method"], r["labelled"]): r for r in rows}
    out = []
    if verdict_lines:
        budget = verdict_budget(budgets)
        out.append(f"**Verdict** (best AugPaint method against the best non-generative baseline, matched "
                   f"{'optimizer steps' if budget == 'steps' else 'epochs'}, Dice paired over splits):\n")
        out += [f"- {line}" for line in verdict_lines]
        out.append("")
    if known_lines:
        out += [f"- {line}" for line in known_lines]
        out.append("")
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
            out.append(f"| {label(m, online_aug)} | " + " | ".join(cells) + " |")
        out.append("")
    if pairs:
        out.append("**Paired difference to the best non-generative baseline** — Dice points, mean over splits "
                   "[95% t interval], same budget as the verdict\n")
        out.append("| method | " + " | ".join(f"{k} labelled" for k in ks) + " |")
        out.append("|---|" + "---|" * len(ks))
        diff = {(p["method"], p["labelled"]): p for p in pairs}
        best = {p["labelled"]: p["baseline"] for p in pairs}
        for m in methods:
            cells = ["best baseline" if best.get(k) == m else
                     (diff[(m, k)]["diff"].text() if (m, k) in diff else "—") for k in ks]
            out.append(f"| {label(m, online_aug)} | " + " | ".join(cells) + " |")
        out.append("")
    if timings:
        out.append("| stage | wall seconds (all splits) |")
        out.append("|---|---|")
        for name, s in timings.items():
            out.append(f"| {name} | {s:.0f} |")
        out.append(f"| total | {sum(timings.values()):.0f} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], methods, budgets, path: Path, online_aug: str = "none") -> Path | None:
    """Dice (mean ± std over splits) against labelled cases, one panel per budget; None without matplotlib."""
    if missing("matplotlib"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4), squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        for m in methods:
            pts = sorted((r["labelled"], r["dice_mean"], r["dice_std"]) for r in rows
                         if r["budget"] == budget and r["method"] == m)
            if pts:
                k, d, e = zip(*pts)
                ax.errorbar(k, d, yerr=e, marker="o", capsize=3, label=label(m, online_aug))
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


def write_results(run: Path, opts, records: list[dict], used: dict) -> dict:
    """Write results.json, results.md and results.png from the run records and the stages used (``used``:
    name -> StageResult); returns what results.json holds."""
    rows = summarise(records)
    plot(rows, list(opts.methods), list(opts.budgets), Path(run) / "results.png", opts.online_aug)
    pairs = paired(records, verdict_budget(opts.budgets))
    lines = verdicts(pairs, opts.online_aug)
    timings = stage_seconds(used)
    known = known_region(records) if set(opts.methods) - set(BASELINES) else {}
    known_lines = [known_region_line(k, share, opts.mask) for k, share in known.items()]
    md = markdown(rows, timings, list(opts.methods), list(opts.budgets), pairs, lines, opts.online_aug, known_lines)
    paired_json = [{**{k: v for k, v in p.items() if k != "diff"}, **asdict(p["diff"])} for p in pairs]
    results = {"options": json.loads(json.dumps(asdict(opts), default=str)), "verdict": lines, "known_region": known, "summary": rows,
               "paired": paired_json, "runs": records, "seconds": timings,
               "stage_seconds": {name: st.seconds for name, st in used.items()}, "markdown": md}
    atomic_write_text(Path(run) / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(Path(run) / "results.md", md)
    return results
