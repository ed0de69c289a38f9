"""ONNX export of the encoder, U-Net and decoder (legacy TorchScript exporter, opset 17), cached by hash.

`export_onnx(spec, out_dir)` returns the path of ``<out_dir>/<name>-<key16>.onnx`` where the key hashes the
model's weights, its config, the spec (names, shapes), the opset, the exporter version and the torch version.
A cache hit (sidecar key + file hash match) reuses the file; anything else re-exports, checks the model with
``onnx.checker`` and stores it atomically, so concurrent or interrupted runs never leave a half-written file
that is later trusted.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from . import cache
from .specs import OPSET, ExportSpec


def onnx_key(spec: ExportSpec) -> str:
    return cache.key_of(
        model=spec.name, weights=cache.module_sha256(spec.module), config=spec.config,
        inputs={k: (str(d), s) for k, (d, s) in spec.input_shapes.items()}, outputs=spec.output_names,
        opset=OPSET, exporter=cache.EXPORTER_VERSION, torch=torch.__version__.split("+")[0],
    )


def onnx_path(spec: ExportSpec, out_dir: Path, key: str | None = None) -> Path:
    key = key or onnx_key(spec)
    return Path(out_dir) / f"{spec.name}-{key[:16]}.onnx"


def _export_bytes(spec: ExportSpec) -> bytes:
    module = spec.module
    training = module.training
    module.eval()
    # Export on CPU in float32 whatever device the model lives on (a copy keeps the caller's model untouched).
    params = next(module.parameters())
    if params.device.type != "cpu" or params.dtype != torch.float32:
        import copy
        module = copy.deepcopy(module).to("cpu", torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, spec.sample_inputs(2), buf, input_names=list(spec.input_names),
            output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes, opset_version=OPSET,
            do_constant_folding=True, dynamo=False,
        )
    spec.module.train(training)
    return buf.getvalue()


def export_onnx(spec: ExportSpec, out_dir: Path, *, force: bool = False, log=None) -> Path:
    """Export ``spec`` to ONNX under ``out_dir`` (or reuse a verified cached export); returns the path."""
    import onnx

    key = onnx_key(spec)
    path = onnx_path(spec, out_dir, key)
    hit, why = cache.lookup(path, key)
    if hit and not force:
        if log:
            log(f"{spec.name}: cached {path}")
        return path
    if log and path.exists():
        log(f"{spec.name}: rebuilding {path.name}: {why}")
    data = _export_bytes(spec)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    cache.store(path, key, write, model=spec.name, inputs=list(spec.input_names),
                outputs=list(spec.output_names), opset=OPSET, profile=list(spec.profile),
                batch_sizes=list(spec.batch_sizes), exporter=cache.EXPORTER_VERSION,
                torch=torch.__version__, onnx=onnx.__version__)
    if log:
        log(f"{spec.name}: exported {path}")
    return path


def export_all(autoencoder, unet, out_dir: Path, *, force: bool = False, log=None,
               batch_sizes=None) -> dict[str, Path]:
    """Export encoder, U-Net and decoder; {name: path}."""
    from .specs import DEFAULT_BATCH_SIZES, export_specs

    specs = export_specs(autoencoder, unet, batch_sizes or DEFAULT_BATCH_SIZES)
    return {name: export_onnx(spec, out_dir, force=force, log=log) for name, spec in specs.items()}
