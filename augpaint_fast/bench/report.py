"""The bench's outputs from its records: a Markdown report (machine, limits, table, goals) and a PNG plot."""
from __future__ import annotations

from pathlib import Path

from ..host import optional_import

# the plot's optional dependency: what to install, and for what
MATPLOTLIB = {"extra": "bench", "feature": "augpaint-fast bench's plot"}

METHOD_NAMES = {"augpaint": "AugPaint", "eager": "eager loop", "repaint_latent": "RePaint (latent)",
                "repaint_pixel": "RePaint (pixel)"}


def _f(value, fmt: str) -> str:
    return "-" if value is None else f"{value:{fmt}}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def goals(records: list[dict]) -> list[tuple[str, str]]:
    """(goal, measured) lines for the issue-level targets, from the AugPaint records: the range over
    configurations and batch sizes for the ratios to RePaint (each must hold everywhere), the best record for
    the engine goals."""
    aug = [r for r in records if r["method"] == "augpaint"]

    def where(r: dict) -> str:
        return f"{r['config']}, batch {r['batch_size']}"

    def spread(key: str) -> str:
        rows = [r for r in aug if r.get(key) is not None]
        if not rows:
            return "not measured"
        lo, hi = min(rows, key=lambda r: r[key]), max(rows, key=lambda r: r[key])
        return f"{lo[key]:.2f}x ({where(lo)}) to {hi[key]:.2f}x ({where(hi)})"

    def best(key: str, fmt) -> str:
        rows = [r for r in aug if r.get(key) is not None]
        if not rows:
            return "not measured"
        r = max(rows, key=lambda r: r[key])
        return f"{fmt(r[key])} ({where(r)})"

    out = [
        ("AugPaint >= 4x faster than latent RePaint on the same U-Net and engine", spread("speedup_vs_repaint_latent")),
        ("AugPaint >= 20x faster than pixel RePaint at equal image size", spread("speedup_vs_repaint_pixel")),
        ("best engine >= 2x the eager baseline", best("speedup_vs_eager", _ratio)),
        (">= 70% of the measured dense peak", best("fraction_of_peak", lambda v: f"{100 * v:.0f}%")),
    ]
    paper8 = [r for r in aug if r["preset"] == "paper" and r["batch_size"] == 8 and r["device"].startswith("cuda")]
    fastest = min(paper8, key=lambda r: r["seconds_per_batch"]) if paper8 else None
    out.append(("H100: paper preset 8 x 50 + decode <= 0.15 s",
                f"{fastest['seconds_per_batch']:.3f} s ({fastest['config']}, {fastest['machine']['gpu']['name']})"
                if fastest else "not measured (needs the paper preset at batch 8 on a GPU)"))
    return out


def markdown(records: list[dict], summary: dict) -> str:
    """The report: header (machine, versions, peak, bandwidth, command), one row per record, goals, notes."""
    m = summary["machine"]
    gpu = m.get("gpu")
    peaks = ", ".join(f"{dt} {p['gflops']:.1f} GFLOP/s ({p['kernel']})" for dt, p in summary["dense_peak"].items())
    lines = [
        f"# augpaint-fast bench: preset `{summary['preset']}`, {summary['steps']} steps",
        "",
        f"- Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['physical_cores']} physical cores), "
        f"SIMD {' '.join(m['cpu_simd']) or '-'}, torch threads {m['torch_threads']}"
        + (f"; GPU {gpu['name']} ({gpu['memory_gib']} GiB)" if gpu else "; no GPU") + f"; device `{m['device']}`",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items() if v),
        f"- Measured dense peak: {peaks}; copy bandwidth {summary['memory_bandwidth_gbs']:.1f} GB/s",
        f"- Command: `{summary['command']}`",
        f"- Timing: median of {summary['repeats']} repeats after a warm-up (min-max in brackets); random weights. "
        f"U-Net {summary['flops_gflop']['unet']:.3f} GFLOP per sample per call, pixel U-Net "
        f"{summary['flops_gflop']['pixel_unet']:.3f}, encoder {summary['flops_gflop']['encoder']:.3f}, decoder "
        f"{summary['flops_gflop']['decoder']:.3f} (counted, 2 FLOPs per multiply-add).",
        f"- Quality: {summary['quality_note']}",
        "",
        "| config | method | batch | s / batch (min-max) | samples/s | s per 8 samples | U-Net calls (timed) "
        "| GFLOP / call | % of peak | vs eager | vs RePaint latent | vs RePaint pixel | known PSNR dB "
        "| MAD vs eager fp32 (grey) | diversity (grey) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    group = {"eager": 0, "augpaint": 1, "repaint_latent": 2, "repaint_pixel": 3}
    for r in sorted(records, key=lambda r: (r["batch_size"], group[r["method"]])):  # stable: configs in run order
        lines.append(
            f"| {r['config']} | {METHOD_NAMES[r['method']]} | {r['batch_size']} | "
            f"{r['seconds_per_batch']:.3f} ({r['seconds_min']:.3f}-{r['seconds_max']:.3f}) | "
            f"{r['samples_per_s']:.3f} | {8 / r['samples_per_s']:.2f} | {r['unet_calls']} ({r['timed_calls']}) | "
            f"{r['gflop_per_call']:.1f} | {100 * r['fraction_of_peak']:.1f}% | {_ratio(r['speedup_vs_eager'])} | "
            f"{_ratio(r['speedup_vs_repaint_latent'])} | {_ratio(r['speedup_vs_repaint_pixel'])} | "
            f"{_f(r['known_psnr_db'], '.2f')} | {_f(r['mad_grey_vs_eager'], '.3f')} | "
            f"{_f(r.get('diversity_grey'), '.2f')} |")
    lines += ["", "![samples/s by configuration and batch size, with the limit](bench.png)"]
    lines += ["", "Goals (measured over the AugPaint records; every ratio is at equal batch size):", ""]
    lines += [f"- {goal}: **{measured}**" for goal, measured in goals(records)]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in summary["notes"]]
    return "\n".join(lines) + "\n"


def plot(records: list[dict], summary: dict, path: Path) -> Path:
    """Grouped bars of samples/s by configuration and batch size (log scale), with AugPaint's limit per dtype
    (dense peak / counted FLOPs per sample) drawn as dashed lines."""
    optional_import("matplotlib", **MATPLOTLIB).use("Agg")
    import matplotlib.pyplot as plt
    batches = sorted({r["batch_size"] for r in records})
    series = []
    for r in records:
        key = (r["config"], r["method"])
        if key not in series:
            series.append(key)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(batches) * max(1, len(series)) / 3), 4.8))
    width = 0.8 / max(1, len(series))
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    for s, (config, method) in enumerate(series):
        xs, ys = [], []
        for b, batch in enumerate(batches):
            row = next((r for r in records if (r["config"], r["method"], r["batch_size"]) == (config, method, batch)),
                       None)
            if row is not None:
                xs.append(b + (s - (len(series) - 1) / 2) * width)
                ys.append(row["samples_per_s"])
        label = {"augpaint": f"AugPaint, {config}", "repaint_latent": f"RePaint latent, {config}",
                 "eager": "eager loop (torch fp32)", "repaint_pixel": "RePaint pixel (torch fp32)"}[method]
        ax.bar(xs, ys, width, label=label, color=colours(s % colours.N), edgecolor="white",
               hatch="//" if method.startswith("repaint") else None)
    flops = summary["flops_per_sample_augpaint"]
    for i, (dtype, peak) in enumerate(summary["dense_peak"].items()):
        limit = peak["gflops"] * 1e9 / flops
        ax.axhline(limit, color="black", linestyle=["--", ":", "-."][i % 3], linewidth=1.2,
                   label=f"AugPaint limit: {dtype} dense peak / FLOPs per sample ({limit:.3g}/s)")
    ax.set_yscale("log")
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel(f"samples/s ({summary['steps']} steps + encode/decode)")
    m = summary["machine"]
    where = m["gpu"]["name"] if m.get("gpu") and m["device"].startswith("cuda") else m["cpu_model"]
    ax.set_title(f"augpaint-fast bench: preset {summary['preset']}\n{where}, {m['torch_threads']} threads", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    from ..atomic import atomic_write

    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path
