"""``export`` (ONNX exports and TensorRT plans of a weights folder) and ``import-weights`` (diffusers models in)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .command import Command


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, required=True, help="weights folder (autoencoder/ and unet/)")
    p.add_argument("--format", choices=["onnx", "trt"], default="onnx", help="onnx (default) or trt")
    p.add_argument("--out", type=Path, required=True, help="folder for the exports (a cache: reruns reuse them)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                   help="TensorRT precision for the encoder and U-Net (the decoder is built in float32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes of the optimisation profile (default 1 2 4 8 16)")
    p.add_argument("--force", action="store_true", help="rebuild even when a verified cached file exists")


def _export(args) -> None:
    from ..export.command import export_models

    export_models(args.weights, args.format, args.out, dtype=args.dtype, batch_sizes=args.batch_sizes,
                  force=args.force)


def _import_arguments(p: argparse.ArgumentParser) -> None:
    from ..interop.command import SOURCES

    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the model's library")
    p.add_argument("folder", type=Path, help="the local, already downloaded model folder (nothing is downloaded): "
                   "diffusers: an LDMPipeline folder; monai: networks.json and the state dicts it names")
    p.add_argument("--out", type=Path, required=True, help="weights folder to write (autoencoder/ and unet/)")


def _import(args) -> None:
    from ..interop.command import import_weights

    record = import_weights(args.source, args.folder, args.out)
    counts = [str(n) for model, n in record["tensors"].items() if model != "unconverted"]
    print(f"imported {record['from']} {args.folder} -> {args.out} (path: {record['path']}, "
          f"{' + '.join(counts)} tensors, 0 unconverted)")


EXPORT = Command("export", "export the models to ONNX (and TensorRT plans), cached", _export_arguments, _export)
IMPORT_WEIGHTS = Command("import-weights", "convert a local diffusers or MONAI model into a weights folder",
                         _import_arguments, _import)
