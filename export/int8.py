"""int8 U-Net: post-training quantization of the ONNX export with NNCF, calibrated on sampling trajectories, cached.

- What: the U-Net graphs only (``INT8_GRAPHS``: ``unet``, and ``unet_full`` / ``unet_shallow`` of feature
  caching). NNCF's ONNX backend inserts QuantizeLinear/DequantizeLinear pairs as the ``Recipe`` says (int8
  weights per channel, int8 activations, asymmetric where NNCF's MIXED preset puts them, ``FLOAT_LAYERS`` kept
  in float32); OpenVINO reads the QDQ graph and runs its convolutions and matrix products in int8
  (``engines.openvino_engine``, ``dtype="int8"``). The encoder runs once per source and the decoder once per
  sample (against ``steps`` U-Net calls), and the decoder's codebook ArgMin must see exact distances: both stay
  float32. ONNX Runtime's static quantization of the same graph measured no faster than float32 on an AVX2 CPU
  without VNNI, so the onnx engine has no int8 path. The levers tried on the recipe: docs/int8.md.
- Calibration (``Calibration``): the U-Net's inputs recorded from real sampling runs (``job.calibrate``), at
  every timestep of the schedule; ``record`` runs only on a cache miss.
- Cache: ``<out>/<graph>-int8-<key16>.onnx`` plus its sidecar (``export.cache``). The key hashes the float32
  export's key (weights, config, exporter, torch), the calibration's fingerprint (data digest and settings),
  the NNCF version and the recipe: the same inputs are a hit and write nothing. The sidecar records the float32
  key, so an engine finds the int8 export of its weights (``find_int8``).
"""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import cache
from .onnx_export import onnx_key
from .specs import ExportSpec

# Bump when the quantization code changes what it writes for the same recipe.
QUANTIZER_VERSION = "nncf-onnx-qdq-2"
# Node-name patterns kept in float32: the timestep embedding and its per-block projections (tiny [B, d] products
# whose error reaches every block), the first and the last convolution (eps itself). Keeping them halved the
# int8 U-Net's error on held-out trajectories of the tiny weights (max rel diff 0.46 -> 0.18, mean |diff| 0.118
# -> 0.078 with mean |eps| 0.78). The attention blocks (qkv, softmax, the two matmuls, proj_out) as well: the
# best scope measured on whole sampling runs (docs/int8.md: MAD 9.45 -> 9.04 grey levels with NNCF's default
# ranges; with the ``Recipe``'s MINMAX ranges, quantizing everything instead costs 4.2 grey against 0.67).
FLOAT_LAYERS = (".*time_embed.*", ".*temb_proj.*", ".*/conv_in/.*", ".*/conv_out/.*", ".*/attn/.*")
# The U-Net graphs that have an int8 export: the plain one, and the two of feature caching (``specs.deep_cache_specs``).
INT8_GRAPHS = ("unet", "unet_full", "unet_shallow")
INT8_EXTRA = "int8"
INT8_PACKAGES = "onnx openvino nncf"


@dataclass(frozen=True)
class Calibration:
    """The U-Net inputs to calibrate on: ``record()`` returns feeds ({input name: array}, one per U-Net call of
    the recorded runs); ``fingerprint`` is everything they depend on (it joins the cache key), so a cache hit
    never records."""

    fingerprint: dict
    record: Callable[[], list[dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Recipe:
    """How NNCF quantizes: its preset name, the node patterns kept in float32, bias correction (fast: the
    default, or the full one), the model type (``"transformer"`` turns SmoothQuant on), the activation range
    estimator (a ``RangeEstimatorParametersSet`` name; None: NNCF's own, MEAN_MINMAX for per-tensor
    activations) and ``AdvancedQuantizationParameters`` overrides (``advanced``: {field: NNCF value}).
    ``describe()`` is what joins the cache key.

    The default's two levers (docs/int8.md, shipped tiny weights, 50-step runs): MINMAX activation ranges, the
    global extremes over every calibration call — NNCF's MEAN_MINMAX averages each call's extremes, and a
    diffusion U-Net's activations span a different range at every timestep, so the mean clipped the extreme
    timesteps (MAD 9.04 -> 0.67 grey levels); and SmoothQuant, which moves activation outliers into the
    weights (0.69 alone, 0.62 with MINMAX, known-region PSNR unchanged)."""

    preset: str = "mixed"
    float_layers: tuple[str, ...] = FLOAT_LAYERS
    fast_bias_correction: bool = True
    model_type: str | None = "transformer"
    activation_ranges: str | None = "minmax"
    advanced: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"preset": self.preset, "float_layers": list(self.float_layers),
                "fast_bias_correction": self.fast_bias_correction, "model_type": self.model_type,
                "activation_ranges": self.activation_ranges,
                "advanced": {k: repr(v) for k, v in sorted(self.advanced.items())}}

    def advanced_parameters(self) -> dict:
        """``advanced`` with the activation range estimator filled in (imports NNCF)."""
        if not self.activation_ranges:
            return dict(self.advanced)
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        ranges = getattr(RangeEstimatorParametersSet, self.activation_ranges.upper())
        return {"activations_range_estimator_params": ranges, **self.advanced}


DEFAULT_RECIPE = Recipe()


def require_nncf():
    """nncf, or one line naming the extra to install."""
    from augpaint_fast.host import optional_import

    return optional_import("nncf", extra=INT8_EXTRA, feature="int8 quantization", packages=INT8_PACKAGES)


def int8_key(spec: ExportSpec, calibration: Calibration, nncf_version: str, recipe: Recipe = DEFAULT_RECIPE) -> str:
    return cache.key_of(onnx=onnx_key(spec), calibration=calibration.fingerprint, nncf=nncf_version,
                        quantizer=QUANTIZER_VERSION, recipe=recipe.describe())


def quantize_onnx(onnx_file: Path, feeds: list[dict[str, np.ndarray]], recipe: Recipe = DEFAULT_RECIPE) -> bytes:
    """The QDQ model (serialized ONNX) of ``onnx_file`` quantized by ``recipe`` on every row of ``feeds``.

    NNCF runs in a spawned child process: a process that has run its quantization (its ONNX Runtime sessions
    and thread pools) can die with a segmentation fault when it forks later (a DataLoader's workers, the job's
    worker processes), so it never runs in the caller's process.
    """
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_quantize_here, Path(onnx_file), feeds, recipe).result()


def _quantize_here(onnx_file: Path, feeds: list[dict[str, np.ndarray]], recipe: Recipe) -> bytes:
    """``quantize_onnx``'s work, in the process it is called in (NNCF's progress bars shown, its per-node INFO
    lines not)."""
    import logging

    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    nncf.set_log_level(logging.WARNING)

    model_type = nncf.ModelType(recipe.model_type) if recipe.model_type else None
    model = nncf.quantize(onnx.load(str(onnx_file)), nncf.Dataset(feeds),
                          preset=nncf.QuantizationPreset(recipe.preset), subset_size=len(feeds),
                          fast_bias_correction=recipe.fast_bias_correction, model_type=model_type,
                          ignored_scope=nncf.IgnoredScope(patterns=list(recipe.float_layers), validate=False),
                          advanced_parameters=AdvancedQuantizationParameters(**recipe.advanced_parameters()))
    return model.SerializeToString()


def quantize_int8(spec: ExportSpec, onnx_file: Path, out_dir: Path, calibration: Calibration, *,
                  recipe: Recipe = DEFAULT_RECIPE, force: bool = False, log=None) -> Path:
    """The int8 QDQ export of ``spec`` (the float32 export ``onnx_file``) under ``out_dir``: a verified cached
    file, or calibrated and quantized now."""
    nncf = require_nncf()
    key = int8_key(spec, calibration, nncf.__version__, recipe)
    path = Path(out_dir) / f"{spec.name}-int8-{key[:16]}.onnx"
    hit, why = cache.lookup(path, key)
    if hit and not force:
        if log:
            log(f"{spec.name} int8: cached {path}")
        return path
    if log:
        log(f"{spec.name} int8: calibrating ({why if path.exists() else 'not cached'})")
    feeds = calibration.record()
    data = quantize_onnx(onnx_file, feeds, recipe)
    cache.store(path, key, lambda tmp: tmp.write_bytes(data), model=spec.name, dtype="int8",
                onnx_key=onnx_key(spec), onnx=str(onnx_file), calibration=calibration.fingerprint,
                calibration_calls=len(feeds), nncf=nncf.__version__, quantizer=QUANTIZER_VERSION,
                recipe=recipe.describe())
    if log:
        log(f"{spec.name} int8: exported {path}")
    return path


def quantize_unet_graphs(specs: dict[str, ExportSpec], onnx_files: dict[str, Path], out_dir: Path,
                         calibration: Calibration, *, recipe: Recipe = DEFAULT_RECIPE, force: bool = False,
                         log=None) -> dict[str, Path]:
    """The int8 exports of the U-Net graphs among ``specs`` ({name: path}, ``quantize_int8`` each): ``unet`` and,
    for feature caching, ``unet_full`` (the same inputs) and ``unet_shallow``, whose ``feature`` input is
    calibrated on the float32 ``unet_full``'s feature at the same call (the cached one comes from a call at most
    N - 1 steps earlier: the same ranges). The trajectories are recorded once, at the first cache miss."""
    recorded: list[list[dict[str, np.ndarray]]] = []

    def feeds() -> list[dict[str, np.ndarray]]:
        if not recorded:
            recorded.append(calibration.record())
        return recorded[0]

    shared = Calibration(calibration.fingerprint, feeds)
    paths = {}
    for name in INT8_GRAPHS:
        if name not in specs:
            continue
        cal = shared
        if name == "unet_shallow":
            cal = Calibration(dict(calibration.fingerprint, feature="unet_full float32, same call"),
                              lambda: with_features(specs["unet_full"], feeds()))
        paths[name] = quantize_int8(specs[name], onnx_files[name], out_dir, cal, recipe=recipe, force=force,
                                    log=log)
    return paths


def with_features(full: ExportSpec, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """``feeds`` of the full U-Net with the deep feature it computes for each (the shallow graph's inputs)."""
    import torch

    with torch.no_grad():
        return [dict(feed, feature=full.module(*(torch.from_numpy(feed[n]) for n in full.input_names))[1].numpy())
                for feed in feeds]


def find_int8(spec: ExportSpec, out_dir: Path) -> Path | None:
    """The newest verified int8 export of ``spec``'s weights and config under ``out_dir``, or None.

    Exports calibrated on different data are kept side by side (their keys differ); the most recently written
    one is used, and its sidecar says which data it was calibrated on.
    """
    want = onnx_key(spec)
    found = []
    for path in Path(out_dir).glob(f"{spec.name}-int8-*.onnx"):
        try:
            meta = cache.read_meta(path)
        except (OSError, ValueError):
            continue
        if meta.get("onnx_key") == want and cache.lookup(path, meta.get("key"))[0]:
            found.append((cache.sidecar(path).stat().st_mtime, path.name, path))
    return max(found)[2] if found else None


def describe(path: Path) -> str:
    """One line saying what an int8 export was calibrated on (for logs)."""
    meta = cache.read_meta(path)
    return f"{path.name} (calibration {json.dumps(meta.get('calibration'), sort_keys=True)})"
