"""Everything ``pipeline`` checks before its first stage: every setting, path and input it will use.

A pipeline runs for hours; an argument it would only reach after training the autoencoder and the LDM (the
number of labelled cases, a sampling or segmentation setting, the test folder) must fail at once, in one line,
with nothing written. :func:`check_inputs` reads the datasets (labels included) and the weights for that, once
more than the stages will; that costs seconds against the stages' hours.
"""
from __future__ import annotations

from pathlib import Path

from ..checks import in_range, input_file, input_folder, output_folder, positive
from ..errors import AugPaintError


def check_inputs(opts) -> None:
    """Refuse, in one line, any ``PipelineOptions`` the stages would refuse later (run after ``run._check``)."""
    _check_settings(opts)
    output_folder("--out", opts.out)
    _check_models(opts)
    _check_data(opts)


def _check_settings(opts) -> None:
    from ..engines import check_engine
    from ..job.generate import SampleOptions, check_options
    from ..segmentation.model import SegModelConfig

    in_range("--seed", opts.seed, 0, 0xFFFFFFFF)
    for name, value in (("--ae-steps", opts.ae_steps), ("--ae-batch-size", opts.ae_batch_size),
                        ("--ldm-steps", opts.ldm_steps), ("--ldm-batch-size", opts.ldm_batch_size),
                        ("--rand-aug-n", opts.rand_aug_n), ("--seg-batch-size", opts.seg_batch_size),
                        ("--cache-interval", opts.cache_interval)):
        in_range(name, value, 1)
    for name, value in (("--ae-lr", opts.ae_lr), ("--seg-epochs", opts.seg_epochs), ("--seg-lr", opts.seg_lr)):
        positive(name, value)
    check_options(SampleOptions(n=opts.n, steps=opts.steps, mask_mode=opts.mask, seed=opts.seed,
                                paste_back=opts.paste_back, engine=opts.engine))
    check_engine(opts.engine)
    _check_dtype(opts)
    try:  # the segmenter's own rules, under this command's flag names
        SegModelConfig(classes=1, channels=opts.seg_channels, size=opts.seg_size)
    except AugPaintError as e:
        raise AugPaintError(str(e).replace("--size", "--seg-size").replace("--channels", "--seg-channels")) from None


# the engines that run each reduced U-Net dtype (float32 runs everywhere)
DTYPE_ENGINES = {"bfloat16": ("torch", "openvino"), "float16": ("torch",), "int8": ("openvino",)}


def _check_dtype(opts) -> None:
    """``--dtype``: an engine that runs it; int8 also needs ``--weights`` (``export --int8`` quantizes a trained
    folder's U-Net, so a U-Net this run would train has none yet) and covers the unconditional U-Net only."""
    if opts.dtype in (None, "float32"):
        return
    engines = DTYPE_ENGINES.get(opts.dtype)
    if engines is None:
        raise AugPaintError(f"--dtype {opts.dtype}: choose float32, {', '.join(DTYPE_ENGINES)}")
    if opts.engine not in engines:
        raise AugPaintError(f"--dtype {opts.dtype} runs on --engine {' or '.join(engines)}, not {opts.engine}")
    if opts.dtype == "int8" and opts.weights is None:
        raise AugPaintError("--dtype int8 samples with the int8 U-Net that export --int8 makes from a trained "
                            "weights folder: give that folder as --weights")
    if opts.dtype == "int8" and "cond-augpaint" in opts.methods:
        raise AugPaintError("--dtype int8 covers the unconditional U-Net only: leave cond-augpaint out of --methods")


def model_variants(methods) -> list[str]:
    """The LDM variants the methods sample with, so only those are trained or loaded: ``uncond`` for
    ``augpaint``, ``augpaint-flip`` (and ``augpaint+rand-aug``, which adds ``augpaint``), ``cond`` for
    ``cond-augpaint``."""
    uses = {"uncond": {"augpaint", "augpaint-flip", "augpaint+rand-aug"}, "cond": {"cond-augpaint"}}
    return [v for v, ms in uses.items() if ms & set(methods)]


def _check_models(opts) -> None:
    """The given weights folder, whole, for every variant the methods sample with; else the preset to train."""
    from ..models.checkpoint import load_weights_folder, read_config
    from ..models.config import get_preset

    if opts.weights is None:
        get_preset(opts.preset)
        return
    input_folder("--weights", opts.weights)
    read_config(Path(opts.weights) / "autoencoder", "autoencoder")  # the known-region fraction needs it, always
    for variant in model_variants(opts.methods):
        autoencoder, _, unet, _ = load_weights_folder(Path(opts.weights), variant)
        if opts.dtype == "int8" and variant == "uncond":  # its int8 exports, found now rather than after hours
            from ..engines.openvino_engine import check_int8

            check_int8(autoencoder, unet, opts.cache_interval)


def _check_data(opts) -> None:
    """The training folder's cases hold at least the largest ``--labelled`` count of cases with a labelled
    foreground (what ``cases.choose_labelled`` will need), and the test folder has labelled pairs."""
    from ..data import Dataset
    from .cases import CASES_FILE, load_cases

    ds = Dataset.open(opts.data)
    if not ds.labelled:
        raise AugPaintError(f"{opts.data} has no labelled images")
    if opts.cases_file is not None:
        input_file("--cases", opts.cases_file)
    cases_file = opts.cases_file or (Path(opts.data) / CASES_FILE if (Path(opts.data) / CASES_FILE).is_file() else None)
    cases = load_cases([it.id for it in ds.labelled], cases_file=cases_file, pattern=opts.case_pattern)
    foreground = {it.id for it in ds.labelled if ds.load(it).label.max() > 0}
    if not foreground:
        raise AugPaintError(f"every label of {opts.data} is empty: nothing to segment")
    eligible = [c for c, ids in cases.items() if any(i in foreground for i in ids)]
    if max(opts.labelled) > len(eligible):
        raise AugPaintError(f"--labelled {max(opts.labelled)}: {max(opts.labelled)} labelled cases asked for, but "
                            f"only {len(eligible)} cases have a labelled foreground in {opts.data}")
    if not Dataset.open(opts.test).labelled:
        raise AugPaintError(f"--test {opts.test} holds no labelled pairs to evaluate on")
