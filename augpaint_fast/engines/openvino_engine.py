"""The OpenVINO engine: the cached ONNX exports compiled by OpenVINO's CPU plugin, one static-shape model per
batch size.

- Exports: the same cached ONNX files as the onnx engine (``export.onnx_export.export_onnx``, keyed by weights,
  config and exporter), read by ``openvino.Core.read_model`` and reshaped to a static batch before compiling.
- Batch sizes: without ``batch_sizes`` each batch size met is compiled on first use (static shapes, no padding);
  with ``batch_sizes=(...)`` calls are padded up to the nearest listed size (``protocol.run_padded``).
- Precision (``INFERENCE_PRECISION_HINT``): the U-Net runs in bf16 on CPUs with native bf16 dot products
  (AVX512_BF16 or AMX, ``host.cpu().bf16``), f32 elsewhere; ``dtype`` overrides. ``dtype="int8"`` runs the
  int8 U-Net written by ``augpaint-fast export --int8`` (``export.int8``: found in the export cache by the
  weights' float32 export key; its non-quantized ops run in f32), with feature caching its two graphs' int8
  exports (``export --int8`` writes all three). Encoder and
  decoder run in f32 (``autoencoder_dtype``): the decoder's graph holds the codebook distance + ArgMin, and
  bf16 distances would pick different codes. OpenVINO's own default on bf16 CPUs is bf16, so f32 is always
  requested explicitly.
- Threads: ``INFERENCE_NUM_THREADS`` = physical cores (``host.physical_cores``) unless ``threads``. CPU pinning
  is off (``ENABLE_CPU_PINNING``): with fewer threads than cores OpenVINO pinned the calling thread to CPU 0
  for each inference, so N one-thread engines in N worker processes (``--workers N``, the bench's workers rows)
  all ran on CPU 0.
- Compiled models are cached by OpenVINO itself (``CACHE_DIR`` = ``<cache>/openvino``; keyed by OpenVINO on
  the model, its shapes and the compile properties), so a second run skips compilation.
- Feature caching (``cache_interval > 1``): two more exports, ``unet_full`` (eps and the cached deep feature) and
  ``unet_shallow`` (eps from the outer blocks and a cached feature), driven by ``cached.CachedDenoiser``.

Inputs must be CPU tensors (``protocol.check_on_device``); outputs are float32 CPU tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import host
from ..errors import AugPaintError
from .protocol import check_on_device, run_padded
from .torch_engine import DTYPES

_OV_PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16"}


def default_dtype() -> str:
    """"bfloat16" on CPUs with native bf16 dot products (AVX512_BF16 or AMX), else "float32"."""
    return "bfloat16" if host.cpu().bf16 else "float32"


def _precision(dtype: str, what: str) -> str:
    if dtype not in DTYPES or DTYPES[dtype] not in _OV_PRECISION:
        raise AugPaintError(f"the openvino engine runs float32 or bfloat16 (and an int8 U-Net) on the CPU; got "
                            f"{what} {dtype!r}")
    return _OV_PRECISION[DTYPES[dtype]]


def export_dir(cache_dir: str | Path | None) -> Path:
    """Where the engine reads (and writes) its ONNX exports: ``cache_dir``, else the default cache's onnx folder
    (shared with the onnx engine)."""
    from augpaint_fast.export import cache

    return Path(cache_dir) if cache_dir else cache.default_cache_dir() / "onnx"


def _int8_graph(spec, export_dir: Path, log) -> Path:
    """The int8 export of the U-Net graph ``spec`` in ``export_dir``, or one line saying how to make it."""
    from augpaint_fast.export.int8 import describe, find_int8, require_nncf

    path = find_int8(spec, export_dir)
    if path is None:
        require_nncf()  # without NNCF, say which extra makes one
        raise AugPaintError(f"no int8 U-Net of these weights in {export_dir}: make one with augpaint-fast export "
                            f"--int8 --calibrate DATA --weights WEIGHTS --out {export_dir}", param="dtype")
    if log:
        log(f"{spec.name} int8: {describe(path)}")
    return path


def _specs(autoencoder, unet, batch_sizes, cache_interval: int) -> dict:
    """The graphs the engine runs, by name: encoder, U-Net, decoder, and the two feature-caching graphs."""
    from augpaint_fast.export.specs import deep_cache_specs, export_specs

    specs = export_specs(autoencoder, unet, batch_sizes or (1,))
    if cache_interval > 1:
        specs.update(deep_cache_specs(unet, batch_sizes or (1,)))
    return specs


def check_int8(autoencoder, unet, cache_interval: int = 1, cache_dir: str | Path | None = None) -> None:
    """The one-line error ``dtype="int8"`` would raise for these models, now, without compiling anything: for
    callers that validate their arguments before hours of work (``pipeline --dtype int8``)."""
    from .feature_cache import check_interval

    specs, exports = _specs(autoencoder, unet, None, check_interval(cache_interval)), export_dir(cache_dir)
    for name in (n for n in specs if "unet" in n):
        _int8_graph(specs[name], exports, None)


class _StaticModel:
    """One exported model compiled per batch size (static shapes), each with its own infer request."""

    def __init__(self, core, onnx_file: Path, spec, properties: dict, batch_sizes: tuple[int, ...] | None):
        self.core, self.spec, self.properties = core, spec, properties
        self.model = core.read_model(str(onnx_file))
        self.batch_sizes = batch_sizes
        self.requests: dict[int, object] = {}
        for b in batch_sizes or ():
            self._request(b)

    def _request(self, b: int):
        if b not in self.requests:
            model = self.model.clone()
            model.reshape({name: [b, *self.spec.input_shapes[name][1]] for name in self.spec.input_names})
            compiled = self.core.compile_model(model, "CPU", self.properties)
            self.requests[b] = compiled.create_infer_request()
        return self.requests[b]

    def _run_once(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        request = self._request(inputs[0].shape[0])
        feeds = {}
        for name, x in zip(self.spec.input_names, inputs):
            dtype = self.spec.input_shapes[name][0]
            feeds[name] = x.detach().to(dtype).contiguous().numpy()
        request.infer(feeds)
        # The output buffers belong to the request and are overwritten by its next call: copy them out.
        return tuple(torch.from_numpy(np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True))
                     for i in range(len(self.spec.output_names)))

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_on_device("openvino", torch.device("cpu"), **dict(zip(self.spec.input_names, inputs)))
        if not self.batch_sizes:
            return self._run_once(*inputs)
        return run_padded(self._run_once, inputs, self.batch_sizes)


class OpenVinoEngine:
    """OpenVINO (CPU) behind the engine protocol (see the module docstring)."""

    name = "openvino"

    def __init__(self, autoencoder: torch.nn.Module, unet: torch.nn.Module, device: str = "cpu",
                 dtype: str | None = None, autoencoder_dtype: str = "float32",
                 cache_dir: str | Path | None = None, threads: int | None = None,
                 batch_sizes: Sequence[int] | None = None, cache_interval: int = 1, log=None):
        import openvino as ov

        from augpaint_fast.export import cache
        from augpaint_fast.export.onnx_export import export_onnx

        from .feature_cache import check_interval

        self.device = host.resolve_device(device)
        if self.device.type != "cpu":
            raise AugPaintError(f"the openvino engine runs on the CPU only (got device {device!r}); on a GPU use "
                                f"--engine torch or trt")
        self.dtype = dtype or default_dtype()
        self.autoencoder_dtype = autoencoder_dtype
        self.cache_interval = check_interval(cache_interval)
        self.threads = threads or host.physical_cores()
        self.cond = unet.cfg.cond_channels > 0
        if self.dtype == "int8" and self.cond:  # export --int8 quantizes the weights folder's unconditional U-Net
            raise AugPaintError("int8 covers the unconditional U-Net only (export --int8 calibrates and quantizes "
                                "it); run the conditional one (--variant cond) with --dtype float32 or bfloat16",
                                param="dtype")
        exports = export_dir(cache_dir)
        self.cache_dir = (Path(cache_dir) if cache_dir else cache.default_cache_dir()) / "openvino"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.batch_sizes = tuple(sorted(set(int(b) for b in batch_sizes))) if batch_sizes else None
        if self.batch_sizes and min(self.batch_sizes) < 1:
            raise AugPaintError(f"batch sizes must be >= 1, got {list(self.batch_sizes)}")

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache_dir)})
        self.version = ov.__version__

        def props(precision: str) -> dict:
            return {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": self.threads,
                    "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}

        int8 = self.dtype == "int8"
        unet_props = props("f32" if int8 else _precision(self.dtype, "dtype"))
        ae_props = props(_precision(autoencoder_dtype, "autoencoder_dtype"))
        specs = _specs(autoencoder, unet, self.batch_sizes, self.cache_interval)
        # the int8 graphs are looked up before anything is exported
        int8_paths = {n: _int8_graph(specs[n], exports, log) for n in specs if "unet" in n} if int8 else {}
        self.models = {}
        for name in specs:
            path = int8_paths.get(name) or export_onnx(specs[name], exports, log=log)
            self.models[name] = _StaticModel(core, path, specs[name], unet_props if "unet" in name else ae_props,
                                             self.batch_sizes)
        self._cached = None
        if self.cache_interval > 1:
            from .feature_cache import CachedDenoiser

            self._cached = CachedDenoiser(self._full, self._shallow, self.cache_interval)

    # -- the engine protocol ---------------------------------------------------------------------------
    def _check_cond(self, cond) -> None:
        if self.cond and cond is None:
            raise ValueError("this U-Net is conditional: pass cond")
        if not self.cond and cond is not None:
            raise ValueError("this U-Net is unconditional (cond_channels = 0) but cond was given")

    def _args(self, z, t, cond):
        return (z, t) if cond is None else (z, t, cond)

    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        self._check_cond(cond)
        if self._cached is not None:
            return self._cached(z, t, cond)
        return self.models["unet"](*self._args(z, t, cond))[0]

    def _full(self, z, t, cond):
        eps, feature = self.models["unet_full"](*self._args(z, t, cond))
        return eps, feature

    def _shallow(self, z, t, cond, feature):
        return self.models["unet_shallow"](*self._args(z, t, cond), feature)[0]

    def reset_cache(self) -> None:
        """Forget the cached deep features (the next U-Net call is a full one)."""
        if self._cached is not None:
            self._cached.reset()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.models["encoder"](x)[0]

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.models["decoder"](h)[0]
