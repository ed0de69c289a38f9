"""The bench's outputs from its records: a Markdown report (machine, limits, table, goals) and a PNG plot."""
from __future__ import annotations

from pathlib import Path

from ..host import optional_import
from .quality_set import EXACT_MAD_GREY, EXACT_PSNR_DB

# the plot's optional dependency: what to install, and for what
MATPLOTLIB = {"extra": "bench", "feature": "augpaint-fast bench's plot"}

METHOD_NAMES = {"augpaint": "AugPaint", "eager": "eager loop", "repaint_latent": "RePaint (latent)",
                "repaint_pixel": "RePaint (pixel)", "repaint_pixel_published": "RePaint (pixel, as published)"}


def _f(value, fmt: str) -> str:
    return "-" if value is None else f"{value:{fmt}}"


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def goals(records: list[dict]) -> list[tuple[str, str]]:
    """(goal, measured) lines for the issue-level targets, from the exact AugPaint records (cache_interval 1;
    a cached configuration computes other samples, so it enters only a line of its own): the range over
    configurations and batch sizes for the ratios to RePaint (each must hold everywhere), the best record for
    the engine goals. A record whose quality is outside the exact tolerance (``within_exact_tolerance`` False:
    int8 today) enters the RePaint ratios (same engine on both sides) but no engine goal; a line names it."""
    runs = [r for r in records if r["method"] == "augpaint" and r["seconds_per_batch"] is not None]
    aug = [r for r in runs if r["exact"]]
    outside = [r for r in aug if r.get("within_exact_tolerance") is False]
    tolerant = [r for r in aug if r.get("within_exact_tolerance") is not False]

    def where(r: dict) -> str:
        return f"{r['config']}, batch {r['batch_size']}"

    def spread(key: str) -> str:
        rows = [r for r in aug if r.get(key) is not None]
        if not rows:
            return "not measured"
        lo, hi = min(rows, key=lambda r: r[key]), max(rows, key=lambda r: r[key])
        return f"{lo[key]:.2f}x ({where(lo)}) to {hi[key]:.2f}x ({where(hi)})"

    def best(rows: list[dict], key: str, fmt) -> str:
        rows = [r for r in rows if r.get(key) is not None]
        if not rows:
            return "not measured"
        r = max(rows, key=lambda r: r[key])
        return f"{fmt(r[key])} ({where(r)})"

    expected = next((r["expected_vs_repaint_latent"] for r in aug if r.get("expected_vs_repaint_latent")), None)
    out = [
        ("AugPaint >= 4x faster than latent RePaint on the same U-Net and engine"
         + (f" (expected from the call counts: {expected:.2f}x)" if expected else ""),
         spread("speedup_vs_repaint_latent")),
        ("AugPaint >= 20x faster than pixel RePaint at equal image size, on the same engine",
         spread("speedup_vs_repaint_pixel")),
        ("AugPaint vs pixel RePaint as published (250 steps, jumps 10 x 10)",
         spread("speedup_vs_repaint_pixel_published")),
        ("best exact engine >= 2x the eager baseline", best(tolerant, "speedup_vs_eager", _ratio)),
        (f"best configuration within the exact tolerance (known PSNR within {EXACT_PSNR_DB} dB of the eager loop's, "
         f"MAD to its samples <= {EXACT_MAD_GREY:g} grey levels) >= 3x the eager loop",
         best([r for r in tolerant if r.get("within_exact_tolerance")], "speedup_vs_eager", _ratio)),
        (">= 70% of the measured dense peak (executed FLOPs, exact engines)",
         best(tolerant, "fraction_of_peak", lambda v: f"{100 * v:.0f}%")),
    ]
    if outside:
        named = {r["config"]: f"{r['config']} (MAD {r['mad_grey_vs_eager']:.2f} grey, known PSNR "
                              f"{r['known_psnr_db']:.2f} dB)" for r in outside}
        out.append(("exact configurations outside the exact tolerance (in no engine goal above)",
                    "; ".join(named.values())))
    cached = [r for r in runs if not r["exact"]]
    if cached:
        out.append(("feature caching (approximate samples): best effective samples/s vs the eager baseline",
                    best(cached, "speedup_vs_eager", _ratio)))
    paper8 = [r for r in aug if r["preset"] == "paper" and r["batch_size"] == 8 and r["device"].startswith("cuda")]
    fastest = min(paper8, key=lambda r: r["seconds_per_batch"]) if paper8 else None
    out.append(("H100: paper preset 8 x 50 + decode <= 0.15 s",
                f"{fastest['seconds_per_batch']:.3f} s ({fastest['config']}, {fastest['machine']['gpu']['name']})"
                if fastest else "not measured (needs the paper preset at batch 8 on a GPU)"))
    return out


def machine_key(record: dict) -> tuple:
    """What makes two records' machines the same: CPU model, logical CPUs, device and GPU name."""
    m = record["machine"]
    return m["cpu_model"], m["logical_cpus"], m["device"], (m.get("gpu") or {}).get("name")


def _peak_line(dtype: str, p: dict) -> str:
    theo = p.get("theoretical")
    if theo is None:
        theory = "theoretical: not computed off the CPU"
    elif theo["gflops"] is None:
        theory = f"theoretical: unknown ({theo['why']})"
    else:
        theory = (f"theoretical {theo['gflops']:.1f} ({theo['uarch']}: {theo['cores']} cores x {theo['ghz']:.2f} GHz x "
                  f"{theo['flops_per_cycle']} FLOPs/cycle)")
    return (f"{dtype}: measured {p['start_gflops']:.1f} (start) and {p['end_gflops']:.1f} (end) GFLOP/s, spread "
            f"{p['spread_pct']:.1f}%, best by {p['kernel']}; {theory}")


def _row(r: dict) -> str:
    workers = f" ({r['workers']} workers)" if r.get("workers", 1) > 1 else ""
    head = f"| {r['config']}{workers} | {METHOD_NAMES[r['method']]} | {r['batch_size']} | "
    if r["seconds_per_batch"] is None:
        return head + f"not run: {r['not_run']} |" + " - |" * 14
    expected = r.get("expected_vs_repaint_latent") if r["method"] == "augpaint" else None
    return head + (
        f"{r['seconds_per_batch']:.3f} ({r['seconds_q1']:.3f}-{r['seconds_q3']:.3f}) | "
        f"{r['samples_per_s']:.3f} | {8 / r['samples_per_s']:.2f} | {r['unet_calls']} ({r['timed_calls']}) | "
        f"{r['gflop_per_call']:.1f} | {r['achieved_gflops']:.1f} | {_percent(r['fraction_of_peak'])} | "
        f"{_ratio(r['speedup_vs_eager'])} | {_ratio(r['speedup_vs_repaint_latent'])}"
        + (f" (exp. {expected:.2f}x)" if expected and r['speedup_vs_repaint_latent'] else "") + " | "
        f"{_ratio(r['speedup_vs_repaint_pixel'])} | {_ratio(r['speedup_vs_repaint_pixel_published'])} | "
        f"{_f(r.get('known_psnr_db'), '.2f')} | {_f(r.get('mad_grey_vs_eager'), '.3f')} | "
        f"{_f(r.get('diversity_grey'), '.2f')} | {r['timing']} |")


def markdown(records: list[dict], summary: dict) -> str:
    """The report: header (machine, commit, load, versions, peaks, bandwidth, command), one row per record,
    goals, notes. Records from different machines (``machine_key``) never share a report: ValueError."""
    machines = {machine_key(r) for r in records}
    if len(machines) > 1:
        raise ValueError(f"records from {len(machines)} machines cannot share one table: {sorted(map(str, machines))}")
    m = summary["machine"]
    gpu = m.get("gpu")
    prov = summary.get("provenance") or {}
    env = ", ".join(f"{k}={v}" for k, v in (prov.get("env") or {}).items()) or "none set"
    lines = [
        f"# augpaint-fast bench: preset `{summary['preset']}`, {summary['steps']} steps",
        "",
        f"- Machine: {m['cpu_model']} ({_f(m.get('cpu_mhz'), '.0f')} MHz), {m['logical_cpus']} logical CPUs "
        f"({m['physical_cores']} physical cores), SIMD {' '.join(m['cpu_simd']) or '-'}, torch threads "
        f"{m['torch_threads']}" + (f"; GPU {gpu['name']} ({gpu['memory_gib']} GiB)" if gpu else "; no GPU")
        + f"; device `{m['device']}`",
        f"- Commit: `{prov.get('git_commit') or 'unknown (not a git checkout)'}`; load average before "
        f"{prov.get('load_before')}, after {prov.get('load_after')}"
        + (f"; other processes used {prov['other_cpus_during']:.2f} CPUs during the timed run"
           if prov.get("other_cpus_during") is not None else "")
        + ("; **busy machine: these figures are not results**" if prov.get("busy_machine") else "")
        + f"; environment: {env}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items() if v),
        "- Dense peak: " + "; ".join(_peak_line(dt, p) for dt, p in summary["dense_peak"].items())
        + f"; copy bandwidth {summary['memory_bandwidth_gbs']:.1f} GB/s",
        f"- Command: `{summary['command']}`",
        f"- Timing: median of {summary['repeats']} repeats after a warm-up (interquartile range in brackets), "
        f"AugPaint and RePaint interleaved; random weights. U-Net {summary['flops_gflop']['unet']:.3f} GFLOP per "
        f"sample per call (a cached shallow call {summary['flops_gflop'].get('unet_shallow', 0):.3f}), pixel U-Net "
        f"{summary['flops_gflop']['pixel_unet']:.3f}, encoder {summary['flops_gflop']['encoder']:.3f}, decoder "
        f"{summary['flops_gflop']['decoder']:.3f} (counted, 2 FLOPs per multiply-add). Executed GFLOP/s is the "
        f"headline: the FLOPs each batch ran; samples/s counts dense-equivalent samples.",
        f"- Quality: {summary['quality_note']}",
        "",
        "| config | method | batch | s / batch (IQR) | samples/s | s per 8 samples | U-Net calls (timed) "
        "| GFLOP / call | executed GFLOP/s | % of peak | vs eager | vs RePaint latent | vs RePaint pixel "
        "| vs RePaint pixel (published) | known PSNR dB | MAD vs eager fp32 (grey) | diversity (grey) | timed as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    group = {"eager": 0, "augpaint": 1, "repaint_latent": 2, "repaint_pixel": 3, "repaint_pixel_published": 4}
    for r in sorted(records, key=lambda r: (r["batch_size"], group[r["method"]])):  # stable: configs in run order
        lines.append(_row(r))
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
            if row is not None and row["samples_per_s"] is not None:
                xs.append(b + (s - (len(series) - 1) / 2) * width)
                ys.append(row["samples_per_s"])
        label = {"augpaint": f"AugPaint, {config}", "repaint_latent": f"RePaint latent, {config}",
                 "eager": "eager loop (torch fp32)", "repaint_pixel": f"RePaint pixel, {config}",
                 "repaint_pixel_published": f"RePaint pixel as published, {config}"}[method]
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
