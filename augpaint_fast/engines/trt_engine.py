"""The TensorRT engine: plans built from the ONNX export (``export.trt_build``), run on torch CUDA tensors.

Each model gets one plan with an optimisation profile over ``batch_sizes`` (fp16 by default for the encoder
and U-Net; the decoder defaults to fp32 so the codebook ArgMin is not decided by fp16 rounding). Inputs and
outputs are torch CUDA tensors bound by address (``set_tensor_address``) and enqueued on torch's current
stream with ``execute_async_v3``: no pycuda / cuda-python. Every call is padded up to the nearest size in
``batch_sizes`` and the output sliced.

Memory: a plan's execution contexts (one per batch size, plus one per graphed sampling loop) never run at the
same time (one stream), so they share ONE scratch allocation of the plan's device-memory size
(user-managed context memory) instead of each holding its own activations. With ``cuda_graphs=True`` (default)
the U-Net enqueue is captured in a CUDA graph per batch size, and ``sample_loop`` runs a whole sampling loop as
one graph per batch shape (``graphed.LoopCache``: bounded, whatever the number of seeds).

Inputs must already be on ``device`` (``protocol.check_on_device``). Without TensorRT or a GPU,
``export.trt_build.trt_missing()`` says which is missing and how to install it; `create_engine` turns that into
the one-line error.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import torch

from .. import host
from ..errors import AugPaintError
from ..export.trt_build import trt_missing
from ..ops.graphed import LoopCache, engine_sample_loop, trt_denoiser
from .protocol import check_on_device, run_padded

__all__ = ["TrtEngine", "trt_missing"]


def _on_device(device: torch.device):
    """Make ``device`` current while TensorRT allocates (it uses the current CUDA device, not ours)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _stream(device: torch.device) -> int:
    """The handle of torch's current stream on ``device`` (0, the default stream, off CUDA: tests' fake)."""
    return torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0


class _Runner:
    """One TensorRT plan: an engine, its shared scratch memory and execution contexts, run on torch tensors."""

    def __init__(self, plan: Path, spec, device: torch.device, batch_sizes: Sequence[int], graphs: bool):
        import tensorrt as trt

        self.trt = trt
        self.spec, self.device, self.graphs = spec, device, graphs
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        with _on_device(device):  # TensorRT deserialises onto the current device: make it ours (cuda:1)
            self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise AugPaintError(f"TensorRT could not load {plan} (rebuild it with --force)")
        size = getattr(self.engine, "device_memory_size_v2", None) or self.engine.device_memory_size
        self.scratch = torch.empty(max(int(size), 1), dtype=torch.uint8, device=device)  # shared by all contexts
        self.batch_sizes = tuple(sorted(batch_sizes))
        self.contexts_created = 0
        self.contexts: dict[int, object] = {}
        self.static: dict[int, tuple[list[torch.Tensor], torch.Tensor, object]] = {}

    def _torch_dtype(self, name: str) -> torch.dtype:
        trt = self.trt
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
        if hasattr(trt, "int64"):
            table[trt.int64] = torch.int64
        if hasattr(trt, "bfloat16"):
            table[trt.bfloat16] = torch.bfloat16
        return table[self.engine.get_tensor_dtype(name)]

    def _new_context(self):
        """An execution context without memory of its own, using the runner's shared scratch."""
        strategy = getattr(self.trt, "ExecutionContextAllocationStrategy", None)
        if strategy is not None:  # TensorRT >= 10
            ctx = self.engine.create_execution_context(strategy.USER_MANAGED)
        else:
            ctx = self.engine.create_execution_context_without_device_memory()
        if ctx is None:
            raise AugPaintError(f"TensorRT could not create an execution context for {self.spec.name}")
        self.contexts_created += 1
        if hasattr(ctx, "set_device_memory"):
            ctx.set_device_memory(self.scratch.data_ptr(), self.scratch.numel())
        else:
            ctx.device_memory = self.scratch.data_ptr()
        return ctx

    def bind(self, b: int):
        """A context for batch ``b`` bound to new static torch buffers: (context, inputs, output)."""
        ctx = self._new_context()
        inputs = []
        for name in self.spec.input_names:
            _, shape = self.spec.input_shapes[name]
            x = torch.zeros((b, *shape), dtype=self._torch_dtype(name), device=self.device)
            ctx.set_input_shape(name, tuple(x.shape))
            ctx.set_tensor_address(name, x.data_ptr())
            inputs.append(x)
        out_name = self.spec.output_names[0]
        out = torch.empty(tuple(ctx.get_tensor_shape(out_name)), dtype=self._torch_dtype(out_name),
                          device=self.device)
        ctx.set_tensor_address(out_name, out.data_ptr())
        return ctx, inputs, out

    def _context(self, b: int):
        if b not in self.contexts:
            ctx, inputs, out = self.bind(b)
            graph = None
            if self.graphs:
                current = torch.cuda.current_stream(self.device)
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(current)  # the buffers were zeroed on the current stream
                with torch.cuda.stream(stream):
                    ctx.execute_async_v3(stream.cuda_stream)  # first enqueue does lazy work outside capture
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=stream):
                        ctx.execute_async_v3(stream.cuda_stream)
                current.wait_stream(stream)
            self.contexts[b] = ctx
            self.static[b] = (inputs, out, graph)
        return self.contexts[b]

    def _run_fixed(self, *xs: torch.Tensor) -> torch.Tensor:
        b = xs[0].shape[0]
        ctx = self._context(b)
        inputs, out, graph = self.static[b]
        for dst, src in zip(inputs, xs):
            dst.copy_(src)
        if graph is not None:
            graph.replay()
        else:
            ctx.execute_async_v3(_stream(self.device))
        return out.float().clone()

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor:
        check_on_device("trt", self.device, **dict(zip(self.spec.input_names, xs)))
        return run_padded(self._run_fixed, xs, self.batch_sizes)


class TrtEngine:
    """TensorRT behind the engine protocol (see the module docstring)."""

    name = "trt"

    def __init__(self, autoencoder: torch.nn.Module, unet: torch.nn.Module, device: str = "cuda",
                 dtype: str = "float16", decoder_dtype: str = "float32", cache_dir: str | Path | None = None,
                 batch_sizes: Sequence[int] | None = None, cuda_graphs: bool = True, log=None):
        missing = trt_missing()
        if missing:
            raise AugPaintError(f"--engine trt is unavailable: {missing}")
        from augpaint_fast.export import cache
        from augpaint_fast.export.onnx_export import export_onnx
        from augpaint_fast.export.specs import DEFAULT_BATCH_SIZES, export_specs
        from augpaint_fast.export.trt_build import build_engine

        self.device = host.resolve_device(device)
        if self.device.type != "cuda":
            raise AugPaintError("the trt engine runs on CUDA devices only")
        index = self.device.index or 0
        self.cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir() / "trt"
        self.batch_sizes = tuple(sorted(batch_sizes or DEFAULT_BATCH_SIZES))
        self.cond = unet.cfg.cond_channels > 0
        self.cuda_graphs = cuda_graphs
        self._loops = LoopCache()
        specs = export_specs(autoencoder, unet, self.batch_sizes)
        dtypes = {"encoder": dtype, "unet": dtype, "decoder": decoder_dtype}
        self.runners = {}
        for name, spec in specs.items():
            onnx_file = export_onnx(spec, self.cache_dir, log=log)
            plan = build_engine(onnx_file, spec, self.cache_dir, dtypes[name], device_index=index, log=log)
            self.runners[name] = _Runner(plan, spec, self.device, self.batch_sizes,
                                         graphs=cuda_graphs and name == "unet")

    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond != (cond is not None):
            raise ValueError("cond must be given exactly when the U-Net is conditional")
        return self.runners["unet"](z, t) if cond is None else self.runners["unet"](z, t, cond)

    def sample_loop(self, z0, mask, uids, seed, schedule, callback=None) -> torch.Tensor | None:
        """The whole sampling loop as one CUDA graph of U-Net enqueue + fused step + device step counter per
        batch shape (``augpaint_fast.ops.graphed``), or None (caller falls back to ``sampler.augpaint_sample``) unless
        on CUDA with ``cuda_graphs``, an unconditional U-Net and a batch inside the plan's profile."""
        if not (self.device.type == "cuda" and self.cuda_graphs) or self.cond:
            return None
        if not min(self.batch_sizes) <= z0.shape[0] <= max(self.batch_sizes):
            return None
        return engine_sample_loop(self, self._loops, lambda batch: trt_denoiser(self.runners["unet"], batch),
                                  z0, mask, uids, seed, schedule, callback)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.runners["encoder"](x)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.runners["decoder"](h)
