"""``augpaint-fast export``: ONNX exports (and TensorRT plans) of a weights folder, cached and re-runnable."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, required=True, help="weights folder (autoencoder/ and unet/)")
    p.add_argument("--format", choices=["onnx", "trt"], default="onnx", help="onnx (default) or trt")
    p.add_argument("--out", type=Path, required=True, help="folder for the exports (a cache: reruns reuse them)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                   help="TensorRT precision for the encoder and U-Net (the decoder is built in float32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes of the optimisation profile (default 1 2 4 8 16)")
    p.add_argument("--force", action="store_true", help="rebuild even when a verified cached file exists")


def export_command(args) -> None:
    """Check every argument and the weights, then export (nothing is written before the checks pass)."""
    from augpaint_fast.models.checkpoint import load_weights_folder
    from augpaint_fast.checks import in_range, input_folder, output_folder
    from augpaint_fast.errors import AugPaintError
    from augpaint_fast.host import optional_import

    from .onnx_export import export_all
    from .specs import DEFAULT_BATCH_SIZES, export_specs

    input_folder("--weights", args.weights)
    output_folder("--out", args.out)
    sizes = tuple(args.batch_sizes) if args.batch_sizes else DEFAULT_BATCH_SIZES
    for size in sizes:
        in_range("--batch-sizes", size, 1)
    if args.format == "onnx":
        optional_import("onnx", extra="onnx", feature="ONNX export", packages="onnx onnxruntime")
    if args.format == "trt":
        from .trt_build import trt_missing

        missing = trt_missing()
        if missing:
            raise AugPaintError(f"--format trt is unavailable: {missing}")
    autoencoder, _, unet, _ = load_weights_folder(args.weights)
    paths = export_all(autoencoder, unet, args.out, force=args.force, log=print, batch_sizes=sizes)
    if args.format == "trt":
        from .trt_build import build_engine

        specs = export_specs(autoencoder, unet, sizes)
        for name, spec in specs.items():
            build_engine(paths[name], spec, args.out, "float32" if name == "decoder" else args.dtype,
                         force=args.force, log=print)
