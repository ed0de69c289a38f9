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
    p.add_argument("--int8", action="store_true",
                   help="also quantize the U-Net to int8 (NNCF, pip install 'augpaint-fast[int8]'), calibrated on "
                        "sampling runs over --calibrate; run it with --engine openvino --dtype int8 "
                        "--engine-cache OUT")
    p.add_argument("--calibrate", type=Path, default=None, metavar="DATA",
                   help="--int8: dataset folder whose first labelled images are sampled to record the U-Net's inputs")
    p.add_argument("--calibration-images", type=int, default=None, metavar="N",
                   help="--int8: labelled images sampled for calibration (default 4, over 50 DDIM steps)")


def _export(args) -> None:
    from ..errors import AugPaintError
    from ..export.command import export_models

    calibration = None
    if args.int8 or args.calibrate or args.calibration_images is not None:
        if not (args.int8 and args.calibrate):
            raise AugPaintError("--int8 and --calibrate DATA go together (calibration data for the int8 U-Net)")
        from ..export.int8 import require_nncf
        from ..job.calibrate import CALIBRATION_IMAGES, calibration as make_calibration

        require_nncf()  # before any data is read
        images = CALIBRATION_IMAGES if args.calibration_images is None else args.calibration_images
        calibration = make_calibration(args.calibrate, args.weights, images=images)
    export_models(args.weights, args.format, args.out, dtype=args.dtype, batch_sizes=args.batch_sizes,
                  force=args.force, int8=calibration)


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
