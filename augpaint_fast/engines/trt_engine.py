"""The TensorRT engine: plans built from the ONNX export (``export.trt_build``), run on torch CUDA tensors.

Each model gets one plan with an optimisation profile over ``batch_sizes`` (fp16 by default for the encoder
and U-Net; the decoder defaults to fp32 so the codebook ArgMin is not decided by fp16 rounding). Inputs and
outputs are torch CUDA tensors bound by address (``set_tensor_address``) and enqueued on torch's current
stream with ``execute_async_v3``: no pycuda / cuda-python. Every call is padded up to the nearest size in
``batch_sizes`` and the output sliced. With ``cuda_graphs=True`` (default) the U-Net enqueue is captured in a
CUDA graph per batch size, each with its own execution context and static buffers.

Without TensorRT or a GPU, `trt_missing()` says which is missing and how to install it; `create_engine`
turns that into the one-line error.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch

from ..errors import AugPaintError


def trt_missing() -> str | None:
    """None when TensorRT and a CUDA GPU are usable here, else one line naming what is missing."""
    problems = []
    if importlib.util.find_spec("tensorrt") is None:
        problems.append("TensorRT is not installed (pip install 'augpaint-fast[trt]', i.e. pip install tensorrt)")
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU is visible to torch (TensorRT needs an NVIDIA GPU and a CUDA build of "
                        "torch==2.13.0 from the PyTorch CUDA wheel index)")
    if importlib.util.find_spec("onnx") is None:
        problems.append("onnx is not installed (pip install onnx), needed to export the models TensorRT builds from")
    return "; ".join(problems) or None


class _Runner:
    """One TensorRT plan: an engine plus execution contexts, run on torch tensors."""

    def __init__(self, plan: Path, spec, device: torch.device, batch_sizes: Sequence[int], graphs: bool):
        import tensorrt as trt

        self.trt = trt
        self.spec, self.device, self.graphs = spec, device, graphs
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise AugPaintError(f"TensorRT could not load {plan} (rebuild it with --force)")
        self.batch_sizes = tuple(sorted(batch_sizes))
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

    def bind(self, b: int):
        """A new execution context for batch ``b`` bound to static torch buffers: (context, inputs, output)."""
        ctx = self.engine.create_execution_context()
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
                stream = torch.cuda.Stream(self.device)
                with torch.cuda.stream(stream):
                    ctx.execute_async_v3(stream.cuda_stream)  # first enqueue does lazy work outside capture
                    stream.synchronize()
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=stream):
                        ctx.execute_async_v3(stream.cuda_stream)
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
            stream = torch.cuda.current_stream(self.device)
            ctx.execute_async_v3(stream.cuda_stream)
        return out.float().clone()

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor:
        from .protocol import run_padded

        xs = tuple(x.to(self.device) for x in xs)
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

        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise AugPaintError("the trt engine runs on CUDA devices only")
        index = self.device.index or 0
        self.cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir() / "trt"
        self.batch_sizes = tuple(sorted(batch_sizes or DEFAULT_BATCH_SIZES))
        self.cond = unet.cfg.cond_channels > 0
        self.cuda_graphs = cuda_graphs
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
        batch size (``augpaint_fast.graphed``), or None (caller falls back to ``sampler.augpaint_sample``) unless
        on CUDA with ``cuda_graphs``, an unconditional U-Net and a batch inside the plan's profile."""
        if not (self.device.type == "cuda" and self.cuda_graphs) or self.cond:
            return None
        if not min(self.batch_sizes) <= z0.shape[0] <= max(self.batch_sizes):
            return None
        from ..graphed import engine_sample_loop, trt_denoiser

        return engine_sample_loop(self, lambda batch: trt_denoiser(self.runners["unet"], batch), z0, mask, uids,
                                  seed, schedule, callback)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.runners["encoder"](x)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.runners["decoder"](h)
