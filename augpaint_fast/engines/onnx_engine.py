"""The ONNX Runtime engine: encoder, U-Net and decoder exported to ONNX (cached), run by ONNX Runtime.

CPU: ``CPUExecutionProvider`` with ``ORT_ENABLE_ALL`` graph optimisation and intra-op threads = physical
cores; the optimised graph is saved next to the export (keyed by the export's hash, the ORT version and the
provider) and loaded from there on later runs, verified by hash like the export itself.
CUDA (when ``onnxruntime-gpu`` provides ``CUDAExecutionProvider`` and ``device`` is CUDA): the sessions run
on torch's current CUDA stream (``user_compute_stream``), and each (model, batch size) keeps one persistent
I/O binding to static torch input/output buffers: a call copies its inputs in, runs, and copies the output
out, with no allocation, no host round trip and no extra synchronisation.
Inputs must already be on ``device`` (``protocol.check_on_device``); outputs are float32 tensors there.
The batch axis is dynamic; ``batch_sizes=(...)`` pads each call up to the nearest listed size instead (for
fixed-shape tuning), slicing the outputs back.
``cache_interval > 1`` (CPU): feature caching across steps (``engines.cached``) over two more exports,
``unet_full`` and ``unet_shallow`` (``export.specs.deep_cache_specs``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import host
from ..models.config import AutoencoderConfig
from ..errors import AugPaintError
from .protocol import check_on_device, run_padded


def _session(onnx_file: Path, providers: list, cache_dir: Path, threads: int | None):
    import onnxruntime as ort

    from augpaint_fast.export import cache

    onnx_key = cache.read_meta(onnx_file)["sha256"]
    provider = providers[0] if isinstance(providers[0], str) else providers[0][0]
    # ENABLE_ALL output may hold hardware-specific (NCHWc) kernels: key it by this CPU's model and flags too.
    key = cache.key_of(onnx=onnx_key, ort=ort.__version__, provider=provider, cpu=host.cpu().fingerprint)
    opt_path = Path(cache_dir) / f"{onnx_file.stem}.{provider.replace('ExecutionProvider', '').lower()}-{key[:12]}.opt.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or host.physical_cores()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # no warning about serialising a hardware-specific optimised model: keyed above
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    hit, _ = cache.lookup(opt_path, key)
    if hit:
        # Already optimised (with this ORT, this provider): loading it skips the optimisation passes.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        return ort.InferenceSession(str(opt_path), so, providers=providers)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    tmp_holder = {}

    def write(tmp: Path) -> None:
        so.optimized_model_filepath = str(tmp)
        tmp_holder["session"] = ort.InferenceSession(str(onnx_file), so, providers=providers)

    cache.store(opt_path, key, write, onnx=str(onnx_file), onnx_sha256=onnx_key, ort=ort.__version__,
                provider=provider)
    return tmp_holder["session"]


_NP = {torch.float32: np.float32, torch.int64: np.int64, torch.float16: np.float16}


class OnnxEngine:
    """ONNX Runtime behind the engine protocol (see the module docstring)."""

    name = "onnx"

    def __init__(self, autoencoder: torch.nn.Module, unet: torch.nn.Module, device: str = "cpu",
                 cache_dir: str | Path | None = None, threads: int | None = None,
                 batch_sizes: Sequence[int] | None = None, cache_interval: int = 1, log=None):
        import onnxruntime as ort

        from augpaint_fast.export import cache
        from augpaint_fast.export.onnx_export import export_onnx
        from augpaint_fast.export.specs import DEFAULT_BATCH_SIZES, export_specs

        self.device = host.resolve_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir() / "onnx"
        self.batch_sizes = tuple(sorted(batch_sizes)) if batch_sizes else None
        self.cond = unet.cfg.cond_channels > 0
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise AugPaintError("the onnx engine on CUDA needs onnxruntime-gpu (pip install onnxruntime-gpu); "
                                    f"this onnxruntime has {', '.join(ort.get_available_providers())}")
            stream = torch.cuda.current_stream(self.device).cuda_stream
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0,
                                                    "user_compute_stream": str(stream)}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.specs = export_specs(autoencoder, unet, self.batch_sizes or DEFAULT_BATCH_SIZES)
        from .feature_cache import CachedDenoiser, check_interval

        self.cache_interval = check_interval(cache_interval)
        self._cached = None
        if self.cache_interval > 1:
            if self.device.type == "cuda":
                raise AugPaintError("feature caching (--cache-interval) on the onnx engine runs on the CPU; on CUDA "
                                    "use --engine torch")
            from augpaint_fast.export.specs import deep_cache_specs

            self.specs.update(deep_cache_specs(unet, self.batch_sizes or DEFAULT_BATCH_SIZES))
            self._cached = CachedDenoiser(
                lambda z, t, cond: self._run("unet_full", *((z, t) if cond is None else (z, t, cond))),
                lambda z, t, cond, f: self._run("unet_shallow", *((z, t, f) if cond is None else (z, t, cond, f))),
                self.cache_interval)
        self.paths = {n: export_onnx(s, self.cache_dir, log=log) for n, s in self.specs.items()}
        self.sessions = {n: _session(p, providers, self.cache_dir, threads) for n, p in self.paths.items()}
        self.latent_shape = self.specs["unet"].input_shapes["z"][1]
        self._bindings: dict[tuple[str, int], tuple] = {}  # CUDA: (model, batch) -> (binding, inputs, output)

    # -- running one session --------------------------------------------------------------------------
    def _run(self, name: str, *inputs: torch.Tensor) -> torch.Tensor:
        spec = self.specs[name]
        check_on_device(self.name, self.device, **dict(zip(spec.input_names, inputs)))
        if self.batch_sizes:
            return run_padded(lambda *xs: self._run_once(name, *xs), inputs, self.batch_sizes)
        return self._run_once(name, *inputs)

    def _run_once(self, name: str, *inputs: torch.Tensor) -> torch.Tensor:
        spec, session = self.specs[name], self.sessions[name]
        if self.device.type == "cuda":
            return self._run_cuda(name, inputs)
        feeds = {n: x.to(spec.input_shapes[n][0]).contiguous().numpy() for n, x in zip(spec.input_names, inputs)}
        results = session.run(list(spec.output_names), feeds)
        if len(results) > 1:  # unet_full: (eps, feature)
            return tuple(torch.from_numpy(r) for r in results)
        return torch.from_numpy(results[0])

    def _binding(self, name: str, batch: int):
        """The persistent I/O binding of (model, batch): static torch CUDA inputs and output bound once."""
        key = (name, batch)
        if key not in self._bindings:
            spec, session = self.specs[name], self.sessions[name]
            device_id = self.device.index or 0
            binding = session.io_binding()
            inputs = []
            for input_name in spec.input_names:
                dtype, shape = spec.input_shapes[input_name]
                x = torch.zeros((batch, *shape), dtype=dtype, device=self.device)
                binding.bind_input(name=input_name, device_type="cuda", device_id=device_id,
                                   element_type=_NP[x.dtype], shape=tuple(x.shape), buffer_ptr=x.data_ptr())
                inputs.append(x)
            out = torch.empty(self._output_shape(spec, inputs[0]), dtype=torch.float32, device=self.device)
            binding.bind_output(name=spec.output_names[0], device_type="cuda", device_id=device_id,
                                element_type=np.float32, shape=tuple(out.shape), buffer_ptr=out.data_ptr())
            self._bindings[key] = (binding, inputs, out)
        return self._bindings[key]

    def _run_cuda(self, name: str, inputs) -> torch.Tensor:
        binding, static, out = self._binding(name, inputs[0].shape[0])
        for dst, src in zip(static, inputs):
            dst.copy_(src)  # on torch's current stream, which is also the session's compute stream
        self.sessions[name].run_with_iobinding(binding)
        return out.clone()  # the static buffer is overwritten by the next call

    def _output_shape(self, spec, first: torch.Tensor) -> tuple[int, ...]:
        b = first.shape[0]
        if spec.name == "unet":
            return (b, *self.latent_shape)
        ae = AutoencoderConfig.from_dict(self.specs["encoder"].config)
        f = ae.downsample_factor
        if spec.name == "encoder":
            return (b, ae.embed_dim, first.shape[2] // f, first.shape[3] // f)
        return (b, ae.out_channels, first.shape[2] * f, first.shape[3] * f)

    # -- the engine protocol ---------------------------------------------------------------------------
    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond:
            if cond is None:
                raise ValueError("this U-Net is conditional: pass cond")
        elif cond is not None:
            raise ValueError("this U-Net is unconditional (cond_channels = 0) but cond was given")
        if self._cached is not None:
            return self._cached(z, t, cond)
        return self._run("unet", z, t) if cond is None else self._run("unet", z, t, cond)

    def reset_cache(self) -> None:
        """Forget the cached deep features (the next U-Net call is a full one)."""
        if self._cached is not None:
            self._cached.reset()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._run("encoder", x)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self._run("decoder", h)
