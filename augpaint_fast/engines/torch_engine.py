"""The PyTorch engine: the models as they are, under inference mode, with opt-in fast paths.

Defaults are today's behaviour: eager float32, NCHW. Flags (all off by default; turn one on where it is
measured faster, see BENCHMARKS.md "Engines"):

- ``dtype``: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``: autocast for convolutions, linears and
  matmuls (normalisations stay float32 under autocast); outputs are float32. On CPU only bfloat16 is
  offered (oneDNN uses AVX512-BF16/AMX where the CPU has them). The codebook lookup of ``decode`` always runs in
  float32 so a reduced dtype never changes which codes are picked by rounding the distances. ``dtype`` is the
  U-Net's; ``autoencoder_dtype`` (default float32) the encoder's and decoder's (bf16 measured slower there).
- ``channels_last``: NHWC memory format for the weights (of copies) and inputs (cuDNN's preferred layout; on
  this CPU it measured far slower, see BENCHMARKS.md).
- ``compile``: a ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``) for the U-Net;
  on CPU ``"default"`` is inductor with frozen weights (bf16 through the engine's autocast). Compiles once per
  batch shape (minutes on a small CPU); applies to the plain U-Net call, not to ``cache_interval``'s split calls.
- ``cuda_graphs`` (CUDA only): the U-Net call is captured in a CUDA graph per batch size in ``batch_sizes``;
  a call is padded up to the nearest captured size and its output sliced (DESIGN.md §5). ``sample_loop`` then
  also runs a whole sampling loop (U-Net + Triton fused step) as one graph per batch shape (``graphed``).
- ``fused_norm``: every GroupNorm (+ SiLU) of the U-Net and the autoencoder runs as one fused kernel
  (``augpaint_fast.ops.fused_norm``: C++ on CPU, Triton on CUDA; activations keep the compute dtype, so under bf16
  autocast no float32 copies are made around the norms).
- ``cache_interval``: feature caching across steps (``engines.cached``, DeepCache): every N-th U-Net call of a
  run is full, the others reuse its deep feature and run only the outer blocks. 1 (default) = off, outputs
  byte-identical to an engine without the option.
- ``flash_attention``: q, k, v laid out for SDPA's fused (flash) kernels instead of its math fallback.
  ``fused_norm`` and ``flash_attention`` change results by float rounding only; default (None): on for
  bfloat16/float16, off for float32 (``fast_paths_default``).

Inputs must already be on ``device`` (``check_on_device``); outputs are float32 tensors there.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch

from .. import host
from ..errors import AugPaintError
from ..models.unet import DEFAULT_CACHE_DEPTH
from ..ops.graphed import LoopCache, engine_sample_loop
from .protocol import check_on_device, run_padded

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def fast_paths_default(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``fused_norm`` and ``flash_attention`` are on when not given: off in float32, so the default
    engine stays the eager float32 loop, bit for bit; on in reduced precision, where they measured faster."""
    return dtype != torch.float32


class TorchEngine:
    """Runs the autoencoder and U-Net in PyTorch on ``device`` (see the module docstring for the flags)."""

    name = "torch"

    def __init__(self, autoencoder: torch.nn.Module, unet: torch.nn.Module, device: str = "cpu",
                 dtype: str = "float32", channels_last: bool = False, compile: str | None = None,
                 cuda_graphs: bool = False, batch_sizes: Sequence[int] | None = None,
                 autoencoder_dtype: str = "float32", fused_norm: bool | None = None,
                 flash_attention: bool | None = None, cache_interval: int = 1):
        self.device = host.resolve_device(device)
        if dtype not in DTYPES:
            int8 = " (an int8 U-Net runs on the openvino engine)" if dtype == "int8" else ""
            raise AugPaintError(f"unknown dtype {dtype!r}; choose float32, bfloat16 or float16{int8}")
        self.dtype = DTYPES[dtype]
        if autoencoder_dtype not in DTYPES:
            raise AugPaintError(f"unknown autoencoder dtype {autoencoder_dtype!r}")
        self.ae_dtype = DTYPES[autoencoder_dtype]
        if self.device.type == "cpu" and self.dtype == torch.float16:
            raise AugPaintError("float16 is a GPU dtype here; on CPU use --dtype bfloat16")
        if cuda_graphs and self.device.type != "cuda":
            raise AugPaintError("CUDA graphs need a CUDA device (--device cuda)")
        if batch_sizes and not cuda_graphs:
            raise AugPaintError("the torch engine's batch_sizes are the sizes its CUDA graphs are captured for: "
                                "give them with --cuda-graphs, or leave them out")
        # -- inference fast paths and feature caching (see the module docstring) ---------------------------------
        from .feature_cache import CachedDenoiser, check_interval

        fast = fast_paths_default(self.device, self.dtype)
        self.fused_norm = (fast and not compile) if fused_norm is None else bool(fused_norm)
        self.flash_attention = fast if flash_attention is None else bool(flash_attention)
        if self.fused_norm and compile:
            raise AugPaintError("fused_norm and compile do not combine (inductor fuses GroupNorm+SiLU itself)")
        self.cache_interval = check_interval(cache_interval)
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.autoencoder = autoencoder.to(self.device).eval()
        self.unet = unet.to(self.device).eval()
        if channels_last:  # on copies: the caller's modules keep their layout
            import copy

            self.autoencoder = copy.deepcopy(self.autoencoder).to(memory_format=torch.channels_last)
            self.unet = copy.deepcopy(self.unet)
            self.unet = self.unet.to(memory_format=torch.channels_last)
        self._unet_call = self.unet
        if compile == "default" and self.device.type == "cpu":
            # inductor with frozen weights: parameters become constants, so conv/linear weights are prepacked
            # once for oneDNN (the engine never trains, and denoiser runs under inference_mode)
            self._unet_call = torch.compile(self.unet, dynamic=False, options={"freezing": True})
        elif compile:
            self._unet_call = torch.compile(self.unet, mode=compile, dynamic=False)
        self.cuda_graphs = cuda_graphs
        from augpaint_fast.export.specs import DEFAULT_BATCH_SIZES

        self.batch_sizes = tuple(sorted(batch_sizes or DEFAULT_BATCH_SIZES))
        self._graphs: dict[int, tuple] = {}  # per-U-Net-call graphs: at most one per size in batch_sizes
        self._loops = LoopCache()  # whole-loop graphs: one per batch shape, bounded
        self._cached = (CachedDenoiser(self._unet_full, self._unet_shallow, self.cache_interval)
                        if self.cache_interval > 1 else None)

    def _autocast(self, dtype: torch.dtype | None = None):
        """Autocast to ``dtype`` (default the U-Net's; none for float32), with the inference fast paths that are on."""
        dtype = dtype or self.dtype
        from ..models.layers import inference_paths

        stack = contextlib.ExitStack()
        stack.enter_context(inference_paths(fused_norm=self.fused_norm, flash_attention=self.flash_attention))
        if dtype != torch.float32:
            stack.enter_context(torch.autocast(self.device.type, dtype=dtype))
        return stack

    def _in(self, x: torch.Tensor, name: str = "input") -> torch.Tensor:
        check_on_device(self.name, self.device, **{name: x})
        x = x.to(torch.float32)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        return y.float().contiguous()

    # -- U-Net ------------------------------------------------------------------------------------------
    def _unet(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        with self._autocast():
            return self._unet_call(z, t, cond)

    def _graphed(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Replay (capturing on first use) the CUDA graph of this batch size; z's batch is a captured size."""
        b = z.shape[0]
        if b not in self._graphs:
            static = [z.clone(), t.clone(), None if cond is None else cond.clone()]
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm up (cuDNN autotuning, lazy init) outside the capture
                    self._unet(*static)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._unet(*static)
            self._graphs[b] = (graph, static, out)
        graph, static, out = self._graphs[b]
        static[0].copy_(z)
        static[1].copy_(t)
        if cond is not None:
            static[2].copy_(cond)
        graph.replay()
        return out.clone()

    @torch.inference_mode()
    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        check_on_device(self.name, self.device, t=t)
        z = self._in(z, "z")
        cond = None if cond is None else self._in(cond, "cond")
        if self._cached is not None:
            return self._out(self._cached(z, t, cond))
        if self.cuda_graphs:
            inputs = [z, t] if cond is None else [z, t, cond]
            return run_padded(lambda *xs: self._out(self._graphed(xs[0], xs[1], xs[2] if len(xs) > 2 else None)),
                              inputs, self.batch_sizes)
        return self._out(self._unet(z, t, cond))

    def sample_loop(self, z0, mask, uids, seed, schedule, callback=None) -> torch.Tensor | None:
        """The whole sampling loop as one CUDA graph of U-Net + fused step + device step counter, replayed S
        times (``augpaint_fast.ops.graphed``), or None unless on CUDA with ``cuda_graphs`` (the caller then runs
        ``sampler.augpaint_sample`` over ``denoiser``). Captures the raw U-Net call, not ``_graphed``."""
        if not (self.device.type == "cuda" and self.cuda_graphs) or self._cached is not None:
            return None

        def raw(batch):
            return lambda z, t: self._out(self._unet(self._in(z, "z"), t, None))

        return engine_sample_loop(self, self._loops, raw, z0, mask, uids, seed, schedule, callback)

    # -- feature caching: the split U-Net behind self._cached --------------------------------------------------
    def _unet_full(self, z, t, cond):
        with self._autocast():
            return self.unet.forward_with_feature(z, t, cond, depth=DEFAULT_CACHE_DEPTH)

    def _unet_shallow(self, z, t, cond, feature):
        with self._autocast():
            return self.unet.forward_shallow(z, t, feature, cond, depth=DEFAULT_CACHE_DEPTH)

    def reset_cache(self) -> None:
        """Forget the cached deep features (the next U-Net call is a full one)."""
        if self._cached is not None:
            self._cached.reset()

    # -- autoencoder ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(self.ae_dtype):
            return self._out(self.autoencoder.encode(self._in(x, "x")))

    @torch.inference_mode()
    def decode(self, h: torch.Tensor) -> torch.Tensor:
        if self.ae_dtype == torch.float32:
            with self._autocast(torch.float32):
                return self._out(self.autoencoder.decode(self._in(h, "h")))
        zq, _ = self.autoencoder.quantizer(self._in(h, "h"))  # float32 codebook lookup
        with self._autocast(self.ae_dtype):
            return self._out(self.autoencoder.decode_quantized(zq.contiguous(memory_format=self.memory_format)))
