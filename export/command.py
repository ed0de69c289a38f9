"""``augpaint-fast export``: ONNX exports (and TensorRT plans, or an int8 U-Net) of a weights folder, cached and
re-runnable."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .int8 import Calibration


def export_models(weights: Path, fmt: str, out: Path, *, dtype: str = "float16",
                  batch_sizes: tuple[int, ...] | None = None, force: bool = False,
                  int8: Calibration | None = None) -> None:
    """Export ``weights`` to ONNX (``fmt="onnx"``) or also build TensorRT plans (``"trt"``, encoder and U-Net in
    ``dtype``, the decoder in float32) into the cache folder ``out``, for ``batch_sizes`` (default 1 2 4 8 16);
    with ``int8`` (ONNX only), also the int8 U-Net and its two graphs of feature caching, calibrated on it
    (``export.int8``).
    Every argument and the weights are checked first: nothing is written before the checks pass."""
    from augpaint_fast.models.checkpoint import load_weights_folder
    from augpaint_fast.checks import in_range, input_folder, output_folder
    from augpaint_fast.errors import AugPaintError
    from augpaint_fast.host import optional_import

    from .int8 import quantize_unet_graphs, require_nncf
    from .onnx_export import export_all, export_onnx
    from .specs import DEFAULT_BATCH_SIZES, deep_cache_specs, export_specs

    input_folder("weights", weights)
    output_folder("out", out)
    sizes = tuple(batch_sizes) if batch_sizes else DEFAULT_BATCH_SIZES
    for size in sizes:
        in_range("batch_sizes", size, 1)
    if fmt == "onnx":
        optional_import("onnx", extra="onnx", feature="ONNX export", packages="onnx onnxruntime")
    if int8 is not None:
        if fmt != "onnx":
            raise AugPaintError(f"int8 quantization takes fmt onnx (OpenVINO runs it), got {fmt}", param="fmt")
        require_nncf()
    if fmt == "trt":
        from .trt_build import trt_missing

        missing = trt_missing()
        if missing:
            raise AugPaintError(f"fmt trt is unavailable: {missing}", param="fmt")
    autoencoder, _, unet, _ = load_weights_folder(weights)
    paths = export_all(autoencoder, unet, out, force=force, log=print, batch_sizes=sizes)
    if int8 is not None:
        specs = {**export_specs(autoencoder, unet, sizes), **deep_cache_specs(unet, sizes)}
        for name in ("unet_full", "unet_shallow"):
            paths[name] = export_onnx(specs[name], out, force=force, log=print)
        quantize_unet_graphs(specs, paths, out, int8, force=force, log=print)
    if fmt == "trt":
        from .trt_build import build_engine

        specs = export_specs(autoencoder, unet, sizes)
        for name, spec in specs.items():
            build_engine(paths[name], spec, out, "float32" if name == "decoder" else dtype,
                         force=force, log=print)
