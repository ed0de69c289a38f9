"""``augpaint-fast pipeline``: the whole method on one dataset, for several splits of labelled cases.

For a training folder (``--data``: images/, labels/, optional unlabelled/ and cases.json) and a held-out test
folder (``--test``)::

    autoencoder, LDM (and conditional LDM) on every training image       (once; or --weights)
    for each split s and each number of labelled cases k:
        labelled/             the k cases' images and labels (the rest of --data is unlabelled)
        seg/unet-<S>steps     the labelled-only U-Net at each budget; the steps-matched one is also the filter
        gen/<method>/         sample (augpaint, augpaint-flip, cond-augpaint) or rand-aug, n per source
        gen/<method>/kept/    the filter's top fraction (paper §3.3)
        gen/augpaint+rand-aug one Rand Aug copy of each kept AugPaint pair
        seg/<method>-<S>steps train-seg on labelled (x --real-repeat) + kept
        evaluate every seg run on --test (Dice, HD95)
    results.json, results.md  the verdict; method x k: mean ± std over splits, per budget; each method's paired
                              difference to the best non-generative baseline; seconds per stage

Online augmentation (``--online-aug standard``, the default; :mod:`augpaint_fast.segmentation.augment`) is on
for every segmenter, real and generated pairs alike, except ``unet-noaug`` (labelled only, no augmentation at
all: the paper's baseline). The non-generative baselines are ``unet-noaug``, ``unet`` (labelled + online aug)
and ``rand-aug`` (Rand Aug copies + online aug); ``augpaint+rand-aug`` trains on the labelled pairs, Rand Aug's
kept copies and one Rand Aug copy of each kept AugPaint pair (so Rand Aug also transforms the generated pairs,
and the set is about as large as AugPaint's).

Knobs (pipeline-wide, each in the fingerprint of the stages it changes): ``--n``, ``--mask``, ``--margin``,
``--paste-back`` (sampling), ``--keep``, ``--per-source-filter`` (filter), ``--real-repeat`` (each real pair R
times per epoch beside the generated ones), ``--online-aug``/``--online-flip`` (every segmenter). To compare
settings of one knob, run a second ``--out`` with ``--weights RUN/weights``.

Budgets (``--budget``): ``epochs`` trains every method for ``--seg-epochs`` epochs of its own training set
(so a 16x larger augmented set also gets 16x more optimizer steps); ``steps`` trains every method of a
(split, k) for the same number of optimizer steps, those of the largest set at ``--seg-epochs`` epochs. Only
the second tells a better training set from more training; both are reported. Runs of equal length are
shared (a method's epochs and steps budgets often coincide).

Every stage is resumable and skipped when its inputs and settings are unchanged (``stages``).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..models.checkpoint import weights_sha256
from ..data import Dataset
from ..errors import AugPaintError
from ..core.masks import MASK_MODES
from ..segmentation.augment import FLIPS
from .cases import CASES_FILE, choose_labelled, load_cases
from .checks import check_inputs
from .stages import Stages, folder_fingerprint

METHODS = ("unet-noaug", "unet", "rand-aug", "cond-augpaint", "augpaint", "augpaint-flip", "augpaint+rand-aug")
GENERATED = {"rand-aug", "cond-augpaint", "augpaint", "augpaint-flip"}  # methods with a sample-and-filter stage
COMBINED = "augpaint+rand-aug"  # needs the kept sets of rand-aug and augpaint
BUDGETS = ("epochs", "steps")
ONLINE_AUGS = ("none", "standard")


@dataclass
class PipelineOptions:
    data: Path
    test: Path
    out: Path
    labelled: tuple[int, ...] = (1, 2, 5)
    splits: int = 5
    seed: int = 0
    cases_file: Path | None = None
    case_pattern: str | None = None
    methods: tuple[str, ...] = METHODS
    budgets: tuple[str, ...] = BUDGETS
    weights: Path | None = None  # existing autoencoder + U-Net(s): skip training them
    preset: str = "tiny"
    ae_steps: int = 2000
    ae_batch_size: int = 16
    ae_lr: float = 2e-3
    ldm_steps: int = 3000
    ldm_batch_size: int = 64
    ldm_flip_augment: bool = False
    n: int = 30  # samples per labelled image (paper: performance peaks near 30)
    steps: int = 50
    mask: str = "box"
    margin: int = 0
    paste_back: bool = False
    rand_aug_n: int = 5
    keep: float = 0.5
    per_source_filter: bool = False
    real_repeat: int = 1  # each real pair this many times per epoch beside the generated ones
    online_aug: str = "standard"  # every segmenter but unet-noaug
    online_flip: str = "none"
    seg_size: int = 64
    seg_channels: int = 16
    seg_epochs: float = 120.0
    seg_batch_size: int = 4
    seg_lr: float = 5e-4
    engine: str = "torch"
    cache_interval: int = 1  # feature caching while sampling (1 = off): to measure its effect downstream
    progress: bool = True
    extra: dict = field(default_factory=dict)


def _check(opts: PipelineOptions) -> None:
    bad = sorted(set(opts.methods) - set(METHODS))
    if bad:
        raise AugPaintError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if "unet" not in opts.methods and opts.methods:
        opts.methods = ("unet", *opts.methods)  # the filter and the baseline
    if COMBINED in opts.methods:  # its parts, measured beside it
        opts.methods = tuple(dict.fromkeys([*[m for m in opts.methods if m != COMBINED], "rand-aug", "augpaint",
                                            COMBINED]))
    if opts.online_aug == "none":  # unet-noaug would repeat unet
        opts.methods = tuple(m for m in opts.methods if m != "unet-noaug")
    if opts.online_aug not in ONLINE_AUGS:
        raise AugPaintError(f"--online-aug must be one of {', '.join(ONLINE_AUGS)}, got {opts.online_aug!r}")
    if opts.online_flip not in FLIPS:
        raise AugPaintError(f"--online-flip must be one of {', '.join(FLIPS)}, got {opts.online_flip!r}")
    if opts.margin < 0 or opts.real_repeat < 1:
        raise AugPaintError(f"--margin must be >= 0 and --real-repeat >= 1, got {opts.margin} and {opts.real_repeat}")
    bad = sorted(set(opts.budgets) - set(BUDGETS))
    if bad or not opts.budgets:
        raise AugPaintError(f"--budget must be epochs and/or steps, got {', '.join(opts.budgets) or 'nothing'}")
    if not opts.labelled or min(opts.labelled) < 1 or opts.splits < 1:
        raise AugPaintError("--labelled counts and --splits must be >= 1")
    if not 0 < opts.keep <= 1:
        raise AugPaintError(f"--keep must be in (0, 1], got {opts.keep}")
    for name in ("data", "test"):
        if not Path(getattr(opts, name)).is_dir():
            raise AugPaintError(f"--{name} {getattr(opts, name)} is not a folder")


# ------------------------------------------------------------------------------------------------- stages
def _labelled_folder(ds: Dataset, items, out: Path) -> dict:
    """A dataset folder of the chosen items: symlinks to 2-D files; NIfTI slices written as .npy + .png."""
    from ..data.imageio import write_label_png

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for item in items:
        if item.slice_index is None:
            for sub, src in (("images", item.image_path), ("labels", item.label_path)):
                dest = out / sub / f"{item.id}{src.suffix}"
                if not dest.exists():
                    os.symlink(src.resolve(), dest)
        else:
            sample = ds.load(item)
            np.save(out / "images" / f"{item.id}.npy", sample.image)
            write_label_png(out / "labels" / f"{item.id}.png", sample.label)
    return {"images": len(items)}


def _kept_count(n_sources: int, per_source: int, keep: float, by_source: bool) -> int:
    """How many generated pairs the filter keeps (its rounding rule, globally or per source)."""
    from ..segmentation.filtering import keep_count

    return n_sources * keep_count(per_source, keep) if by_source else keep_count(n_sources * per_source, keep)


def run_pipeline(opts: PipelineOptions, log=print) -> dict:
    """Run (or resume) the pipeline; returns the results (also written to OUT/results.json and results.md)."""
    from ..job.generate import SampleOptions, run_sampling
    from ..segmentation.evaluate import evaluate
    from ..segmentation.filtering import run_filter
    from ..segmentation.rand_aug import run_rand_aug
    from ..segmentation.train import train_segmentation
    from ..training import train_autoencoder, train_ldm

    _check(opts)
    check_inputs(opts)  # every argument and input, before anything is written
    run = Path(opts.out)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "pipeline.json", json.dumps(asdict(opts), indent=2, default=str) + "\n")
    stages = Stages(run, log=log)
    data_fp, test_fp = folder_fingerprint(opts.data), folder_fingerprint(opts.test)
    ds = Dataset.open(opts.data)
    if not ds.labelled:
        raise AugPaintError(f"{opts.data} has no labelled images")
    cases_file = opts.cases_file or (Path(opts.data) / CASES_FILE if (Path(opts.data) / CASES_FILE).is_file() else None)
    cases = load_cases([it.id for it in ds.labelled], cases_file=cases_file, pattern=opts.case_pattern)
    by_id = {it.id: it for it in ds.labelled}
    top = {i: int(ds.load(it).label.max()) for i, it in by_id.items()}
    foreground = {i for i, c in top.items() if c > 0}
    classes = max(top.values())  # every segmenter gets all classes, even when its labelled cases miss one
    if classes == 0:
        raise AugPaintError(f"every label of {opts.data} is empty: nothing to segment")
    eligible = {c for c, ids in cases.items() if any(i in foreground for i in ids)}
    variants = ["uncond"] + (["cond"] if "cond-augpaint" in opts.methods else [])

    # 1. the generative models ----------------------------------------------------------------------------
    if opts.weights is not None:
        weights = Path(opts.weights)
        model_fp = {v: weights_sha256(weights, v) for v in variants}
    else:
        weights = run / "weights"
        common = dict(preset=opts.preset, progress=opts.progress)
        ae = stages.run_stage("autoencoder", weights / "autoencoder",
                              {"preset": opts.preset, "steps": opts.ae_steps, "batch_size": opts.ae_batch_size,
                               "lr": opts.ae_lr}, [data_fp],
                              lambda: asdict(train_autoencoder(opts.data, weights, steps=opts.ae_steps,
                                                               batch_size=opts.ae_batch_size, lr=opts.ae_lr,
                                                               seed=opts.seed, **common)))
        model_fp = {}
        for v in variants:
            name = "ldm" if v == "uncond" else "ldm-cond"
            st = stages.run_stage(name, weights / ("unet" if v == "uncond" else "unet-cond"),
                                  {"steps": opts.ldm_steps, "batch_size": opts.ldm_batch_size,
                                   "flip_augment": opts.ldm_flip_augment}, [ae.fingerprint],
                                  lambda v=v: asdict(train_ldm(opts.data, weights, steps=opts.ldm_steps,
                                                               batch_size=opts.ldm_batch_size, seed=opts.seed,
                                                               conditional=v == "cond",
                                                               flip_augment=opts.ldm_flip_augment, **common)))
            model_fp[v] = st.fingerprint

    # 2. every split x number of labelled cases ---------------------------------------------------------------
    records = []
    for split in range(opts.splits):
        for k in sorted(set(opts.labelled)):
            chosen = choose_labelled(cases, eligible, k, opts.seed, split)
            items = [by_id[i] for c in chosen for i in cases[c]]
            tag = f"k{k}-s{split}"
            sd = run / "splits" / tag
            lab = stages.run_stage(f"{tag}/labelled", sd / "labelled", {"cases": chosen}, [data_fp],
                                   lambda: _labelled_folder(ds, items, sd / "labelled"))
            n_lab = len(items)
            gen_st = {}
            for method in [m for m in opts.methods if m in GENERATED]:
                out = sd / "gen" / method
                if method == "rand-aug":
                    settings = {"n": opts.rand_aug_n, "seed": opts.seed, "size": opts.seg_size}
                    fn = (lambda out=out: asdict(run_rand_aug(sd / "labelled", out, n=opts.rand_aug_n,
                                                              seed=opts.seed, size=opts.seg_size,
                                                              progress=opts.progress)))
                    inputs = [lab.fingerprint]
                else:
                    variant = "cond" if method == "cond-augpaint" else "uncond"
                    settings = {"n": opts.n, "steps": opts.steps, "mask_mode": opts.mask, "seed": opts.seed,
                                "flip": "random" if method == "augpaint-flip" else "none",
                                "paste_back": opts.paste_back, "engine": opts.engine}
                    extra = {"variant": variant} if variant != "uncond" else {}
                    if opts.cache_interval != 1:
                        extra["engine_options"] = {"cache_interval": opts.cache_interval}
                    if opts.margin:
                        settings["margin"] = opts.margin
                    so = SampleOptions(**settings, **extra)
                    settings["variant"] = variant
                    if opts.cache_interval != 1:
                        settings["cache_interval"] = opts.cache_interval
                    fn = (lambda out=out, so=so: _summary(run_sampling(sd / "labelled", weights, out, so,
                                                                        progress=opts.progress)))
                    inputs = [lab.fingerprint, model_fp[variant]]
                gen_st[method] = stages.run_stage(f"{tag}/gen/{method}", out, settings, inputs, fn)

            # budgets: the steps of E epochs over each method's training set; "steps" = the largest of them
            sizes = {m: n_lab for m in ("unet-noaug", "unet") if m in opts.methods}
            kept_n = {}
            for method in gen_st:
                per = opts.rand_aug_n if method == "rand-aug" else opts.n
                kept_n[method] = _kept_count(n_lab, per, opts.keep, opts.per_source_filter)
                sizes[method] = opts.real_repeat * n_lab + kept_n[method]
            if COMBINED in opts.methods:
                sizes[COMBINED] = opts.real_repeat * n_lab + kept_n["rand-aug"] + kept_n["augpaint"]
            epoch_steps = {m: max(1, math.ceil(opts.seg_epochs * sizes[m] / opts.seg_batch_size)) for m in sizes}
            match = max(epoch_steps.values())
            lengths = {m: {"epochs": epoch_steps[m], "steps": match} for m in sizes}

            def train(method: str, total: int, data: list[Path], inputs: list[str]):
                out = sd / "seg" / f"{method}-{total}steps"
                augment = "none" if method == "unet-noaug" else opts.online_aug
                settings = {"steps": total, "size": opts.seg_size, "channels": opts.seg_channels, "classes": classes,
                            "batch_size": opts.seg_batch_size, "lr": opts.seg_lr, "seed": opts.seed + split}
                if augment != "none":  # only then, so runs made before online augmentation still resume
                    settings["online_aug"] = augment
                    if opts.online_flip != "none":
                        settings["online_flip"] = opts.online_flip
                if len(data) > 1 and opts.real_repeat != 1:
                    settings["real_repeat"] = opts.real_repeat
                    data = [data[0]] * opts.real_repeat + data[1:]
                st = stages.run_stage(f"{tag}/seg/{method}-{total}steps", out, settings, inputs,
                                      lambda: _train_summary(train_segmentation(
                                          data, out, size=opts.seg_size, channels=opts.seg_channels,
                                          classes=classes, steps=total, batch_size=opts.seg_batch_size, lr=opts.seg_lr,
                                          seed=opts.seed + split, augment=augment,
                                          online_flip=opts.online_flip if augment != "none" else "none",
                                          progress=opts.progress)))
                ev = stages.run_stage(f"{tag}/eval/{method}-{total}steps", out / "eval.json", {}, [st.fingerprint, test_fp],
                                      lambda: _eval(evaluate(out, opts.test, progress=False), out / "eval.json"))
                return st, ev

            runs = {}
            for method in [m for m in ("unet", "unet-noaug") if m in opts.methods]:
                for budget in opts.budgets:
                    runs[(method, budget)] = train(method, lengths[method][budget], [sd / "labelled"],
                                                   [lab.fingerprint])
            filter_run, filter_st = _filter_model(runs, sd, opts.budgets)
            kept_st = {}
            for method, gst in gen_st.items():
                kept_dir = sd / "gen" / method / "kept"
                kept_st[method] = kept = stages.run_stage(
                    f"{tag}/filter/{method}", kept_dir, {"keep": opts.keep, "per_source": opts.per_source_filter},
                    [gst.fingerprint, filter_st.fingerprint],
                    lambda method=method, kept_dir=kept_dir: asdict(run_filter(
                        sd / "gen" / method, filter_run, keep=opts.keep, per_source=opts.per_source_filter,
                        out=kept_dir, progress=opts.progress)))
                for budget in opts.budgets:
                    runs[(method, budget)] = train(method, lengths[method][budget], [sd / "labelled", kept_dir],
                                                   [lab.fingerprint, kept.fingerprint])
            if COMBINED in opts.methods:
                out = sd / "gen" / COMBINED
                both = stages.run_stage(f"{tag}/gen/{COMBINED}", out, {"n": 1, "seed": opts.seed, "size": opts.seg_size},
                                        [kept_st["augpaint"].fingerprint],
                                        lambda out=out: asdict(run_rand_aug(sd / "gen" / "augpaint" / "kept", out, n=1,
                                                                            seed=opts.seed, size=opts.seg_size,
                                                                            progress=opts.progress)))
                for budget in opts.budgets:
                    runs[(COMBINED, budget)] = train(COMBINED, lengths[COMBINED][budget],
                                                     [sd / "labelled", sd / "gen" / "rand-aug" / "kept", out],
                                                     [lab.fingerprint, kept_st["rand-aug"].fingerprint,
                                                      both.fingerprint])
            for (method, budget), (st, ev) in runs.items():
                records.append({"split": split, "labelled": k, "cases": chosen, "method": method, "budget": budget,
                                "steps": lengths[method][budget], "train_pairs": sizes[method],
                                "dice": ev.summary["mean"]["dice"], "hd95": ev.summary["mean"]["hd95"],
                                "per_class": ev.summary["per_class"], "train_seconds": st.seconds,
                                "run": str((sd / "seg").relative_to(run))})

    from .report import write_results

    return write_results(run, opts, records, stages.used)


def _filter_model(runs: dict, sd: Path, budgets) -> tuple[Path, object]:
    """The labelled-only U-Net that scores the generated images: the steps-matched one when it was trained
    (the better-trained of the two), else the epochs one."""
    budget = "steps" if "steps" in budgets else "epochs"
    st, _ = runs[("unet", budget)]
    return sd / "seg" / Path(st.name).name, st


def _summary(summary) -> dict:
    return {"written": summary.written, "already_done": summary.already_done, "seconds": summary.seconds,
            "kernel": summary.kernel_path, "empty_labels": summary.empty_labels}


def _train_summary(result) -> dict:
    return {"steps": result.steps, "pairs": result.pairs, "final_loss": result.final_loss, "seconds": result.seconds}


def _eval(report, path: Path) -> dict:
    atomic_write_text(path, json.dumps(report.report, indent=2, default=str) + "\n")
    return {"mean": report.report["mean"], "per_class": report.report["per_class"]}
