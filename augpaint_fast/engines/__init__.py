"""Engines: adapters that run the encoder, U-Net and decoder behind one protocol (``protocol.Engine``).

An engine has a ``device`` and exposes ``denoiser(z, t, cond=None) -> eps`` (the sampler's only expensive call),
``encode(x) -> h`` (the pre-quantisation latent) and ``decode(h) -> x``, all on torch tensors on that device;
the sampler never sees which runtime is underneath. ``sample(engine, ...)`` runs one batch (the engine's
whole-loop CUDA graph where it has one, else the plain sampler). ``ENGINES`` lists every engine with a check
that says whether it can run here and, if not, what is missing and how to install it.

- ``torch``: eager PyTorch (flags: dtype, channels_last, compile, cuda_graphs; see ``torch_engine``).
- ``onnx``: ONNX Runtime over a cached ONNX export (``pip install 'augpaint-fast[onnx]'``; CUDA with
  ``onnxruntime-gpu``).
- ``trt``: TensorRT engines built from the ONNX export (``pip install 'augpaint-fast[trt]'``, NVIDIA GPU).
- ``openvino``: OpenVINO on the CPU over the ONNX export, bf16 where the CPU has it
  (``pip install 'augpaint-fast[openvino]'``); ``dtype="int8"`` runs the int8 U-Net of ``export --int8``
  (``export.int8``, ``pip install 'augpaint-fast[int8]'`` to make one).
"""
from __future__ import annotations

from typing import Callable

from ..errors import AugPaintError
from ..host import install_hint, missing
from .sampling import Sampled, sample
from .protocol import Engine, LoopEngine
from .torch_engine import TorchEngine

__all__ = ["ENGINES", "Engine", "LoopEngine", "Sampled", "TorchEngine", "check_engine", "create_engine",
           "engine_status", "sample"]


def _onnx_check() -> str | None:
    absent = missing("onnx", "onnxruntime")
    if absent:
        hint = install_hint("onnx", "onnx onnxruntime; onnxruntime-gpu for CUDA")
        return f"{' and '.join(absent)} not installed ({hint})"
    return None


def _openvino_check() -> str | None:
    absent = missing("onnx", "openvino")
    if absent:
        return f"{' and '.join(absent)} not installed ({install_hint('openvino', 'onnx openvino')})"
    return None


def _trt_check() -> str | None:
    from ..export.trt_build import trt_missing

    return trt_missing()


# name -> function returning None when the engine can run here, else one line saying what is missing.
ENGINES: dict[str, Callable[[], str | None]] = {
    "torch": lambda: None,
    "onnx": _onnx_check,
    "trt": _trt_check,
    "openvino": _openvino_check,
}


def engine_status() -> dict[str, str | None]:
    """{engine name: None if available, else what is missing}."""
    return {name: check() for name, check in ENGINES.items()}


def check_engine(name: str) -> None:
    """Refuse, in one line, an engine that does not exist or cannot run here (saying what is missing)."""
    if name not in ENGINES:
        raise AugPaintError(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
    missing = ENGINES[name]()
    if missing is not None:
        available = [n for n, why in engine_status().items() if why is None]
        raise AugPaintError(f"engine {name} is unavailable: {missing}; available here: {', '.join(available)}",
                            param="engine")


def create_engine(name: str, autoencoder, unet, **options):
    """Build the named engine over loaded models, or fail with one line naming what is missing.

    ``options`` go to the engine's constructor (e.g. ``device``, ``dtype``, ``channels_last``, ``compile``,
    ``cuda_graphs``, ``batch_sizes``, ``cache_dir``); options an engine does not take raise AugPaintError.
    """
    check_engine(name)
    if name == "onnx":
        from .onnx_engine import OnnxEngine as cls
    elif name == "trt":
        from .trt_engine import TrtEngine as cls
    elif name == "openvino":
        from .openvino_engine import OpenVinoEngine as cls
    else:
        cls = TorchEngine
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "autoencoder", "unet"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise AugPaintError(f"engine {name} does not take option(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(sorted(accepted))}", param="engine")
    return cls(autoencoder, unet, **options)
