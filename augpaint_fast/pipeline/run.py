"""``augpaint-fast pipeline``: the whole method on one dataset, for several splits of labelled cases.

For a training folder (``--data``: images/, labels/, optional unlabelled/ and cases.json) and a held-out test
folder (``--test``)::

    autoencoder, LDM and/or conditional LDM on every training image      (once, those the methods use; or --weights)
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
from ..models.checkpoint import read_config, weights_sha256
from ..data import Dataset, resize_label
from ..errors import AugPaintError
from ..core.masks import MASK_MODES, known_mask
from ..job.settings import SampleSettings
from ..segmentation.augment import FLIPS
from .cases import CASES_FILE, choose_labelled, load_cases
from .checks import check_inputs, model_variants
from .stages import StageResult, Stages, folder_fingerprint

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
    dtype: str | None = None  # the U-Net's dtype while sampling (None = float32; int8: openvino + --weights)
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


@dataclass
class _Run:
    """What every stage of one pipeline run shares: options, stage records, the datasets and their cases."""

    opts: PipelineOptions
    root: Path
    stages: Stages
    ds: Dataset
    data_fp: str
    test_fp: str
    cases: dict[str, list[str]]
    eligible: set[str]  # cases with some foreground: the ones a split may choose
    classes: int  # every segmenter gets all classes, even when its labelled cases miss one
    weights: Path | None = None  # set by _generative_models
    model_fp: dict[str, str] = field(default_factory=dict)  # variant -> fingerprint of its weights


@dataclass
class _Split:
    """One split x number of labelled cases: its folder ``RUN/splits/<tag>`` and its labelled stage."""

    split: int
    k: int
    chosen: list[str]
    folder: Path
    labelled: StageResult
    n_labelled: int
    known_fraction: float  # mean share of a labelled image's area that AugPaint keeps from its source

    @property
    def tag(self) -> str:
        return f"k{self.k}-s{self.split}"


def run_pipeline(opts: PipelineOptions, log=print) -> dict:
    """Run (or resume) the pipeline; returns the results (also written to OUT/results.json and results.md)."""
    from .report import write_results

    _check(opts)
    check_inputs(opts)  # every argument and input, before anything is written
    root = Path(opts.out)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "pipeline.json", json.dumps(asdict(opts), indent=2, default=str) + "\n")
    r = _open_run(opts, root, Stages(root, log=log))
    r.weights, r.model_fp = _generative_models(r)
    records = []
    for split in range(opts.splits):
        for k in sorted(set(opts.labelled)):
            records += _split_records(r, _labelled_split(r, split, k))
    return write_results(root, opts, records, r.stages.used)


def _open_run(opts: PipelineOptions, root: Path, stages: Stages) -> _Run:
    """Fingerprint the data and test folders and read the training data's cases and classes."""
    data_fp, test_fp = folder_fingerprint(opts.data), folder_fingerprint(opts.test)
    ds = Dataset.open(opts.data)
    if not ds.labelled:
        raise AugPaintError(f"{opts.data} has no labelled images")
    cases_file = opts.cases_file or (Path(opts.data) / CASES_FILE if (Path(opts.data) / CASES_FILE).is_file() else None)
    cases = load_cases([it.id for it in ds.labelled], cases_file=cases_file, pattern=opts.case_pattern)
    top = {it.id: int(ds.load(it).label.max()) for it in ds.labelled}
    foreground = {i for i, c in top.items() if c > 0}
    classes = max(top.values())
    if classes == 0:
        raise AugPaintError(f"every label of {opts.data} is empty: nothing to segment")
    eligible = {c for c, ids in cases.items() if any(i in foreground for i in ids)}
    return _Run(opts, root, stages, ds, data_fp, test_fp, cases, eligible, classes)


# ------------------------------------------------------------------------------------ 1. the generative models
def _generative_models(r: _Run) -> tuple[Path, dict[str, str]]:
    """(weights folder, variant -> fingerprint): ``--weights`` as given, else the autoencoder and the LDM(s)
    the methods sample with, trained on every training image (the autoencoder always: the known-region
    fraction beside the verdict is measured at its resolution)."""
    opts = r.opts
    variants = model_variants(opts.methods)
    if opts.weights is not None:
        weights = Path(opts.weights)
        return weights, {v: weights_sha256(weights, v) for v in variants}
    weights = r.root / "weights"
    ae = _train_autoencoder(r, weights)
    return weights, {v: _train_ldm(r, weights, v, ae).fingerprint for v in variants}


def _train_autoencoder(r: _Run, weights: Path) -> StageResult:
    from ..training import train_autoencoder

    o = r.opts
    settings = {"preset": o.preset, "steps": o.ae_steps, "batch_size": o.ae_batch_size, "lr": o.ae_lr}
    return r.stages.run_stage(
        "autoencoder", weights / "autoencoder", settings, [r.data_fp],
        lambda: asdict(train_autoencoder(o.data, weights, steps=o.ae_steps, batch_size=o.ae_batch_size, lr=o.ae_lr,
                                         seed=o.seed, preset=o.preset, progress=o.progress)),
        kind="train autoencoder")


def _train_ldm(r: _Run, weights: Path, variant: str, ae: StageResult) -> StageResult:
    from ..training import train_ldm

    o, cond = r.opts, variant == "cond"
    settings = {"steps": o.ldm_steps, "batch_size": o.ldm_batch_size, "flip_augment": o.ldm_flip_augment}
    return r.stages.run_stage(
        "ldm-cond" if cond else "ldm", weights / ("unet-cond" if cond else "unet"), settings, [ae.fingerprint],
        lambda: asdict(train_ldm(o.data, weights, steps=o.ldm_steps, batch_size=o.ldm_batch_size, seed=o.seed,
                                 conditional=cond, flip_augment=o.ldm_flip_augment, preset=o.preset,
                                 progress=o.progress)),
        kind="train conditional LDM" if cond else "train LDM")


# ------------------------------------------------------------------ 2. every split x number of labelled cases
def _labelled_split(r: _Run, split: int, k: int) -> _Split:
    """Choose the split's k labelled cases and link (or write) them into its ``labelled/`` folder."""
    chosen = choose_labelled(r.cases, r.eligible, k, r.opts.seed, split)
    by_id = {it.id: it for it in r.ds.labelled}
    items = [by_id[i] for c in chosen for i in r.cases[c]]
    folder = r.root / "splits" / f"k{k}-s{split}"
    lab = r.stages.run_stage(f"k{k}-s{split}/labelled", folder / "labelled", {"cases": chosen}, [r.data_fp],
                             lambda: _labelled_folder(r.ds, items, folder / "labelled"), kind="labelled folders")
    return _Split(split, k, chosen, folder, lab, len(items), _known_fraction(r, items))


def _known_fraction(r: _Run, items) -> float:
    """Mean fraction of the labelled images' area inside the known region (``--mask``, ``--margin``, at the
    generator's resolution, as sampling builds it): what AugPaint keeps from its source, so ``1 -`` it is all
    it can vary. Reported beside the verdict."""
    size = read_config(r.weights / "autoencoder", "autoencoder")[0].resolution
    masks = [known_mask(resize_label(r.ds.load(it).label, size), r.opts.mask, r.opts.margin) for it in items]
    return float(np.mean([m.mean() for m in masks]))


def _split_records(r: _Run, s: _Split) -> list[dict]:
    """Generate, filter, train and evaluate every method of one split; one results record per (method, budget)."""
    opts = r.opts
    generated = {m: _generate(r, s, m) for m in opts.methods if m in GENERATED}
    sizes, lengths = _training_lengths(opts, s.n_labelled, generated)
    labelled = [s.folder / "labelled"]
    runs = {}
    for method in [m for m in ("unet", "unet-noaug") if m in opts.methods]:
        for budget in opts.budgets:
            runs[(method, budget)] = _train(r, s, method, lengths[method][budget], labelled, [s.labelled.fingerprint])
    filter_run, filter_st = _filter_model(runs, s.folder, opts.budgets)
    kept = {}
    for method, gen in generated.items():
        kept[method] = _filter(r, s, method, gen, filter_run, filter_st)
        for budget in opts.budgets:
            runs[(method, budget)] = _train(r, s, method, lengths[method][budget],
                                            [*labelled, s.folder / "gen" / method / "kept"],
                                            [s.labelled.fingerprint, kept[method].fingerprint])
    if COMBINED in opts.methods:
        both = _rand_aug_of_kept_augpaint(r, s, kept["augpaint"])
        for budget in opts.budgets:
            runs[(COMBINED, budget)] = _train(
                r, s, COMBINED, lengths[COMBINED][budget],
                [*labelled, s.folder / "gen" / "rand-aug" / "kept", s.folder / "gen" / COMBINED],
                [s.labelled.fingerprint, kept["rand-aug"].fingerprint, both.fingerprint])
    return [{"split": s.split, "labelled": s.k, "cases": s.chosen, "method": method, "budget": budget,
             "steps": lengths[method][budget], "train_pairs": sizes[method], "known_fraction": s.known_fraction,
             "dice": ev.summary["mean"]["dice"], "hd95": ev.summary["mean"]["hd95"],
             "per_class": ev.summary["per_class"], "train_seconds": st.seconds,
             "run": str((s.folder / "seg").relative_to(r.root))}
            for (method, budget), (st, ev) in runs.items()]


def _generate(r: _Run, s: _Split, method: str) -> StageResult:
    """The ``gen/<method>`` stage: Rand Aug copies, or AugPaint samples with the method's settings."""
    from ..job.generate import SampleOptions, run_sampling
    from ..segmentation.rand_aug import run_rand_aug

    o, out, labelled = r.opts, s.folder / "gen" / method, s.folder / "labelled"
    if method == "rand-aug":
        return r.stages.run_stage(
            f"{s.tag}/gen/{method}", out, {"n": o.rand_aug_n, "seed": o.seed, "size": o.seg_size},
            [s.labelled.fingerprint],
            lambda: asdict(run_rand_aug(labelled, out, n=o.rand_aug_n, seed=o.seed, size=o.seg_size,
                                        progress=o.progress)),
            kind=f"generate ({method})")
    sample = sample_settings(o, method)
    run_opts = SampleOptions.of(sample, n=o.n, seed=o.seed, engine=o.engine)
    return r.stages.run_stage(
        f"{s.tag}/gen/{method}", out, sample.stage_settings(o.n, o.seed, o.engine),
        [s.labelled.fingerprint, r.model_fp[sample.variant]],
        lambda: _summary(run_sampling(labelled, r.weights, out, run_opts, progress=o.progress)),
        kind=f"generate ({method})")


def sample_settings(opts: PipelineOptions, method: str) -> SampleSettings:
    """The settings that fix the samples of an AugPaint-family method (``augpaint``, ``augpaint-flip``,
    ``cond-augpaint``) under the pipeline's knobs."""
    return SampleSettings(steps=opts.steps, mask_mode=opts.mask, margin=opts.margin,
                          flip="random" if method == "augpaint-flip" else "none", paste_back=opts.paste_back,
                          variant="cond" if method == "cond-augpaint" else "uncond",
                          cache_interval=opts.cache_interval, dtype=opts.dtype)


def _training_lengths(opts: PipelineOptions, n_labelled: int, generated: dict) -> tuple[dict, dict]:
    """(training pairs per method, method -> budget -> optimizer steps): ``epochs`` is ``--seg-epochs`` over
    the method's own training set, ``steps`` the largest of those, for every method."""
    sizes = {m: n_labelled for m in ("unet-noaug", "unet") if m in opts.methods}
    kept_n = {}
    for method in generated:
        per = opts.rand_aug_n if method == "rand-aug" else opts.n
        kept_n[method] = _kept_count(n_labelled, per, opts.keep, opts.per_source_filter)
        sizes[method] = opts.real_repeat * n_labelled + kept_n[method]
    if COMBINED in opts.methods:
        sizes[COMBINED] = opts.real_repeat * n_labelled + kept_n["rand-aug"] + kept_n["augpaint"]
    epoch_steps = {m: max(1, math.ceil(opts.seg_epochs * sizes[m] / opts.seg_batch_size)) for m in sizes}
    match = max(epoch_steps.values())
    return sizes, {m: {"epochs": epoch_steps[m], "steps": match} for m in sizes}


def _train(r: _Run, s: _Split, method: str, total: int, data: list[Path], inputs: list[str]):
    """Train a segmenter for ``total`` steps on ``data`` (the first folder the real pairs) and evaluate it on
    ``--test``; (train stage, eval stage)."""
    from ..segmentation.evaluate import evaluate
    from ..segmentation.train import train_segmentation

    o = r.opts
    out = s.folder / "seg" / f"{method}-{total}steps"
    augment = "none" if method == "unet-noaug" else o.online_aug
    settings = {"steps": total, "size": o.seg_size, "channels": o.seg_channels, "classes": r.classes,
                "batch_size": o.seg_batch_size, "lr": o.seg_lr, "seed": o.seed + s.split}
    if augment != "none":  # only then, so runs made before online augmentation still resume
        settings["online_aug"] = augment
        if o.online_flip != "none":
            settings["online_flip"] = o.online_flip
    if len(data) > 1 and o.real_repeat != 1:
        settings["real_repeat"] = o.real_repeat
        data = [data[0]] * o.real_repeat + data[1:]
    st = r.stages.run_stage(
        f"{s.tag}/seg/{method}-{total}steps", out, settings, inputs,
        lambda: _train_summary(train_segmentation(
            data, out, size=o.seg_size, channels=o.seg_channels, classes=r.classes, steps=total,
            batch_size=o.seg_batch_size, lr=o.seg_lr, seed=o.seed + s.split, augment=augment,
            online_flip=o.online_flip if augment != "none" else "none", progress=o.progress)),
        kind="train segmenters")
    ev = r.stages.run_stage(f"{s.tag}/eval/{method}-{total}steps", out / "eval.json", {}, [st.fingerprint, r.test_fp],
                            lambda: _eval(evaluate(out, o.test, progress=False), out / "eval.json"), kind="evaluate")
    return st, ev


def _filter(r: _Run, s: _Split, method: str, generated: StageResult, filter_run: Path,
            filter_st: StageResult) -> StageResult:
    """The ``gen/<method>/kept`` stage: the filter's top fraction of the generated pairs (paper §3.3)."""
    from ..segmentation.filtering import run_filter

    o, kept = r.opts, s.folder / "gen" / method / "kept"
    return r.stages.run_stage(
        f"{s.tag}/filter/{method}", kept, {"keep": o.keep, "per_source": o.per_source_filter},
        [generated.fingerprint, filter_st.fingerprint],
        lambda: asdict(run_filter(s.folder / "gen" / method, filter_run, keep=o.keep,
                                  per_source=o.per_source_filter, out=kept, progress=o.progress)),
        kind="filter")


def _rand_aug_of_kept_augpaint(r: _Run, s: _Split, kept_augpaint: StageResult) -> StageResult:
    """The ``gen/augpaint+rand-aug`` stage: one Rand Aug copy of each kept AugPaint pair."""
    from ..segmentation.rand_aug import run_rand_aug

    o, out = r.opts, s.folder / "gen" / COMBINED
    return r.stages.run_stage(
        f"{s.tag}/gen/{COMBINED}", out, {"n": 1, "seed": o.seed, "size": o.seg_size}, [kept_augpaint.fingerprint],
        lambda: asdict(run_rand_aug(s.folder / "gen" / "augpaint" / "kept", out, n=1, seed=o.seed, size=o.seg_size,
                                    progress=o.progress)),
        kind=f"generate ({COMBINED})")


def _filter_model(runs: dict, sd: Path, budgets) -> tuple[Path, StageResult]:
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
