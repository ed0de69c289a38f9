"""Is the generator the bottleneck? For each pipeline run: its generator's training compute, how faithful its
AugPaint samples are, and AugPaint's Dice minus the best non-generative baseline, one Markdown table row per
run, so runs trained 1x, 4x, ... longer line up as a dose-response (issue 16, item 5).

    python examples/generator_fidelity.py RUN [RUN ...] [--out PNG] [--markdown] [--method augpaint]

Columns, all read from the run folder (nothing is written there, nothing is trained or sampled):

- compute: AE and LDM optimizer steps (``pipeline.json``) and their training wall hours (the trainers' own
  clock, which adds up the runs of a resumed training; ``stages/autoencoder.json``, ``stages/ldm.json``);
- AE PSNR: the autoencoder's held-out reconstruction PSNR (dB) as its training recorded it;
- known PSNR: AugPaint samples against their source inside the known region (the run's ``--mask`` and
  ``--margin``), RGB, 8-bit, at the samples' size, pooled over every sample of every split (dB);
- detail in / out: the samples' fine detail (mean |Laplacian|) as a fraction of their source's, inside and
  outside the known region, averaged over sources (examples/source_distance.py's measure);
- MMD² pixels / histograms: squared MMD (RBF kernel) between all AugPaint samples of all splits and the run's
  real training images (``pipeline.json``'s data), in two fixed feature spaces (64x64 images as 32x32
  standardised thumbnails, and colour + |Laplacian| histograms); beside it the labelled sources themselves
  against the real images (what copying the sources would score) and two random halves of the real images
  against each other (what "the same distribution" reads). :mod:`augpaint_fast.data.fidelity` defines them;
- per labelled count: ``--method`` (default ``augpaint``) minus the best non-generative baseline, Dice
  points paired over splits with the 95% t interval, as the pipeline's report computes it from
  ``results.json`` (the baseline's method id after "vs").

Stages without their ``stages/*.json`` record are still running and are skipped; so are AugPaint samples whose
record is older than the LDM's or was made with other sampling settings than ``pipeline.json`` (left over
from a copied run folder), and a ``results.json`` whose options are not the run's or that predates its LDM
(Dice columns then read "pending"). ``--markdown`` adds the column notes under the table; ``--out`` draws
fidelity (left axis) and the Dice difference with its interval (right axis) against AE + LDM steps.
One thread; a PH2 run (450 samples, 150 real images) takes about 8 s of CPU.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread (numpy's BLAS reads it when first imported)
import numpy as np
import torch

from augpaint_fast.atomic import atomic_write
from augpaint_fast.data import load_training_images
from augpaint_fast.data.fidelity import (FEATURE_SIZE, feature_images, histogram_features, median_bandwidth,
                                         mmd2, pixel_features, real_halves_mmd2, source_rows, summarise)
from augpaint_fast.pipeline.report import paired, verdict_budget

NOTES = """\
Known PSNR: AugPaint samples vs their source inside the known region (RGB, dB). Detail: samples' mean
|Laplacian| / the source's, inside / outside the known region. MMD²: squared RBF-kernel MMD to the real
training images in a fixed feature space (64² images as standardised 32² thumbnails; colour + |Laplacian|
histograms), for the samples, then (in brackets) for the labelled sources alone and for two halves of the
real set (the noise floor). Dice: the method minus the best non-generative baseline, points, mean over splits
[95% paired t interval], from the run's results.json."""

# Pipeline options that put runs on different curves of the figure: the data and how samples are made and used.
CURVE = ("data", "mask", "margin", "paste_back", "n", "steps", "keep", "per_source_filter", "real_repeat",
         "online_aug")


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def generator(run: Path, opts: dict) -> dict:
    """Steps (pipeline.json), training hours and AE held-out PSNR (stage records; None while training), and
    the LDM record's time (``ldm_mtime``; 0 with ``--weights``, which trains nothing)."""
    ae, ldm = _json(run / "stages" / "autoencoder.json"), _json(run / "stages" / "ldm.json")
    trained = ae is not None and ldm is not None
    hours = (sum(r["summary"].get("seconds", r["seconds"]) for r in (ae, ldm)) / 3600) if trained else None
    ready = trained or opts.get("weights") is not None
    return {"ae_steps": opts["ae_steps"], "ldm_steps": opts["ldm_steps"], "hours": hours, "ready": ready,
            "ae_psnr": ae["summary"].get("heldout_psnr") if ae else None,
            "ldm_mtime": (run / "stages" / "ldm.json").stat().st_mtime if trained else 0.0}


def current_samples(run: Path, opts: dict, method: str, ldm_mtime: float) -> list[tuple[Path, Path]]:
    """(labelled folder, sample folder) of every split whose ``gen/<method>`` stage finished with this run's
    generator and sampling settings."""
    out = []
    for rec_path in sorted((run / "stages").glob(f"k*-s*__gen__{method}.json")):
        rec = _json(rec_path)
        s = rec["settings"]
        same = (s.get("paste_back") == opts["paste_back"] and s.get("mask_mode") == opts["mask"]
                and s.get("n") == opts["n"] and s.get("steps") == opts["steps"])
        if same and rec_path.stat().st_mtime >= ldm_mtime:
            split = run / "splits" / rec_path.name.split("__")[0]
            out.append((split / "labelled", split / "gen" / method))
    return out


def fidelity(run: Path, opts: dict, method: str, ldm_mtime: float) -> dict | None:
    """Known-region and distribution measures of the run's current samples; None when there are none."""
    folders = current_samples(run, opts, method, ldm_mtime)
    if not folders:
        return None
    rows = [r for labelled, gen in folders for r in source_rows(labelled, gen, opts["mask"], opts["margin"])]
    real = load_training_images(opts["data"], FEATURE_SIZE, progress=False)
    generated = feature_images([p for _, gen in folders for p in sorted((gen / "images").glob("*.png"))])
    unique = {p.name: p for labelled, _ in folders for p in (labelled / "images").iterdir()}  # over splits
    sources = feature_images([unique[name] for name in sorted(unique)])
    mmd = {}
    for space, features in (("pixels", lambda x: pixel_features(x, real)), ("histograms", histogram_features)):
        ref = features(real)
        h = median_bandwidth(ref)
        mmd[space] = {"generated": mmd2(features(generated), ref, h),
                      "sources": mmd2(features(sources), ref, h) if len(sources) > 1 else float("nan"),
                      "real_halves": real_halves_mmd2(ref, h)}
    return {**summarise(rows), "mmd": mmd, "splits": len(folders)}


def dice_differences(run: Path, opts: dict, method: str, ldm_mtime: float) -> dict[int, dict] | None:
    """Per labelled count: ``method``'s paired difference to the best baseline (report.paired) from a
    current results.json; None when there is none yet."""
    results = _json(run / "results.json")
    if results is None or results["options"] != opts or (run / "results.json").stat().st_mtime < ldm_mtime:
        return None
    pairs = paired(results["runs"], verdict_budget(opts["budgets"]))
    return {p["labelled"]: p for p in pairs if p["method"] == method}


def measure(run: Path, method: str = "augpaint") -> dict:
    """Everything one table row shows, for the run folder ``run``."""
    opts = json.loads((run / "pipeline.json").read_text(encoding="utf-8"))
    gen = generator(run, opts)
    fid = fidelity(run, opts, method, gen["ldm_mtime"]) if gen["ready"] else None
    return {"run": str(run), "curve": {k: opts.get(k) for k in CURVE}, "labelled": opts["labelled"],
            "generator": gen, "fidelity": fid,
            "dice": dice_differences(run, opts, method, gen["ldm_mtime"]) if gen["ready"] else None}


def _num(value, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, fmt)


def _mmd_cell(m: dict) -> str:
    return f"{m['generated']:.3f} ({_num(m['sources'], '.3f')} / {m['real_halves']:.3f})"


def header(counts: list[int], method: str) -> str:
    cols = ["run", "AE / LDM steps", "train h", "AE PSNR dB", "known PSNR dB", "detail in / out",
            "MMD² pixels (sources / real halves)", "MMD² histograms (sources / real halves)",
            *[f"{k} labelled: {method} − best baseline" for k in counts]]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def row(m: dict, counts: list[int]) -> str:
    g, f, dice = m["generator"], m["fidelity"], m["dice"]
    cells = [m["run"], f"{g['ae_steps']} / {g['ldm_steps']}", _num(g["hours"], ".2f"), _num(g["ae_psnr"], ".1f")]
    if f is None:
        cells += ["—", "—", "—", "—"]
    else:
        cells += [_num(f["psnr_inside"], ".1f"),
                  f"{_num(f['detail_inside'], '.2f')} / {_num(f['detail_outside'], '.2f')}",
                  _mmd_cell(f["mmd"]["pixels"]), _mmd_cell(f["mmd"]["histograms"])]
    for k in counts:
        p = (dice or {}).get(k)
        cells.append("pending" if dice is None else "—" if p is None else f"{p['diff'].text()} vs {p['baseline']}")
    return "| " + " | ".join(cells) + " |"


def _curve_tags(measures: list[dict]) -> list[str]:
    """Per measure, its curve's name: the :data:`CURVE` options that differ between the runs drawn."""
    varying = [k for k in CURVE if len({json.dumps(m["curve"][k]) for m in measures}) > 1]

    def show(key, value):
        return f"{Path(value).parent.name}/{Path(value).name}" if key == "data" else f"{key}={value}"

    return [", ".join(show(k, m["curve"][k]) for k in varying) for m in measures]


def plot(measures: list[dict], counts: list[int], path: Path) -> None:
    """Fidelity (dB, left, dashed) and the Dice difference with its interval (right, solid) against AE + LDM
    steps; one curve per dataset and sampling setup (:data:`CURVE`), so only training length varies along it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def compute(m):
        return m["generator"]["ae_steps"] + m["generator"]["ldm_steps"]

    fig, left = plt.subplots(figsize=(7.5, 5.5))
    right = left.twinx()
    tags = _curve_tags(measures)
    for c, (marker, tag) in enumerate(zip("osD^v<>", sorted(set(tags)))):
        ms = sorted((m for m, t in zip(measures, tags) if t == tag), key=compute)
        x = [compute(m) for m in ms]
        suffix = f" ({tag})" if tag else ""
        for colour, name, get in (("tab:green", "AE held-out PSNR", lambda m: m["generator"]["ae_psnr"]),
                                  ("tab:purple", "known-region PSNR",
                                   lambda m: m["fidelity"]["psnr_inside"] if m["fidelity"] else None)):
            y = [np.nan if get(m) is None else get(m) for m in ms]
            if not np.isnan(y).all():
                left.plot(x, y, "--", marker=marker, color=colour, label=name + suffix)
        for i, k in enumerate(counts):
            shift = 1 + 0.025 * (i + len(counts) * c)  # side by side where runs share a compute
            pts = [(xx * shift, m["dice"][k]["diff"]) for xx, m in zip(x, ms) if m["dice"] and k in m["dice"]]
            if pts:
                xs, ds = zip(*pts)
                yerr = [[0 if d.low is None else d.mean - d.low for d in ds],
                        [0 if d.high is None else d.high - d.mean for d in ds]]
                right.errorbar(xs, [d.mean for d in ds], yerr=yerr, marker=marker, capsize=3, color=f"C{i}",
                               label=f"Dice difference, {k} labelled{suffix}")
    ticks = sorted({compute(m) for m in measures})
    left.set_xscale("log")
    left.set_xticks(ticks, [str(t) for t in ticks])
    left.minorticks_off()
    left.set_xlabel("generator training: AE + LDM optimizer steps")
    left.set_ylabel("fidelity, dB (dashed)")
    right.axhline(0, color="grey", lw=0.8)
    right.set_ylabel("AugPaint − best baseline, Dice points, 95% CI (solid)")
    handles, labels = (sum(pair, []) for pair in zip(*(ax.get_legend_handles_labels() for ax in (left, right))))
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.06 + 0.022 * ((len(labels) + 1) // 2), 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="pipeline run folders")
    parser.add_argument("--out", type=Path, help="also draw the dose-response figure to this PNG")
    parser.add_argument("--markdown", action="store_true", help="print the column notes under the table")
    parser.add_argument("--method", default="augpaint", help="the generated method to measure (default augpaint)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    measures = [measure(run, args.method) for run in args.runs]
    counts = sorted({k for m in measures for k in m["labelled"]})
    print(header(counts, args.method))
    for m in measures:
        print(row(m, counts))
    if args.markdown:
        print("\n" + NOTES)
    if args.out:
        plot(measures, counts, args.out)


if __name__ == "__main__":
    sys.exit(main())
