"""TensorRT engine building from the ONNX export, cached on disk.

`build_engine(onnx_file, spec, out_dir, dtype)` parses the ONNX export, adds one optimisation profile over the
spec's batch sizes (min/opt/max from `ExportSpec.profile`), builds a serialized engine in fp16 (default), bf16
or fp32 and stores it as ``<out_dir>/<onnx stem>.<dtype>-<key12>.plan`` keyed by the ONNX file's SHA-256, the
TensorRT version, the GPU name, the dtype and the profile. A cached plan is used only when its sidecar key and
file hash match (`export.cache.lookup`); otherwise it is rebuilt.

Needs ``tensorrt`` (``pip install 'augpaint-fast[trt]'``) and an NVIDIA GPU; nothing here imports pycuda or
cuda-python: device memory and streams are torch's.
"""
from __future__ import annotations

from pathlib import Path

from augpaint_fast import host
from augpaint_fast.errors import AugPaintError
from augpaint_fast.host import install_hint, missing

from . import cache
from .specs import ExportSpec

TRT_DTYPES = ("float16", "bfloat16", "float32")


def trt_missing() -> str | None:
    """None when TensorRT plans can be built and run here (tensorrt, onnx and a CUDA GPU), else one line naming
    what is missing and how to install it. TensorRT builds for the GPU it runs on, so building needs one too."""
    import torch

    problems = []
    if missing("tensorrt"):
        problems.append(f"TensorRT is not installed ({install_hint('trt', 'tensorrt')})")
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU is visible to torch (TensorRT needs an NVIDIA GPU and a CUDA build of "
                        "torch==2.13.0 from the PyTorch CUDA wheel index)")
    if missing("onnx"):
        problems.append("onnx is not installed (pip install onnx), needed to export the models TensorRT builds from")
    return "; ".join(problems) or None


def gpu_name(device_index: int = 0) -> str:
    return host.gpu(device_index)["name"]


def plan_key(onnx_file: Path, spec: ExportSpec, dtype: str, device_index: int = 0) -> str:
    import tensorrt as trt

    return cache.key_of(onnx=cache.read_meta(onnx_file)["sha256"], trt=trt.__version__, gpu=gpu_name(device_index),
                        dtype=dtype, profile=list(spec.profile))


def plan_path(onnx_file: Path, out_dir: Path, dtype: str, key: str) -> Path:
    return Path(out_dir) / f"{Path(onnx_file).stem}.{dtype}-{key[:12]}.plan"


def _build_bytes(onnx_file: Path, spec: ExportSpec, dtype: str, workspace_gib: float) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_file).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise AugPaintError(f"TensorRT cannot parse {onnx_file}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if dtype == "float16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif dtype == "bfloat16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise AugPaintError(f"TensorRT {trt.__version__} has no bf16 builder flag (needs TensorRT >= 9)")
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    for name in spec.input_names:
        lo, opt, hi = spec.profile_shapes(name)
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise AugPaintError(f"TensorRT failed to build an engine from {onnx_file} (see the TensorRT log above)")
    return bytes(serialized)


def build_engine(onnx_file: Path, spec: ExportSpec, out_dir: Path, dtype: str = "float16", *,
                 device_index: int = 0, workspace_gib: float = 4.0, force: bool = False, log=None) -> Path:
    """Build (or reuse a verified cached) TensorRT plan for ``onnx_file``; returns its path."""
    import tensorrt as trt

    if dtype not in TRT_DTYPES:
        raise AugPaintError(f"unknown TensorRT dtype {dtype!r}; choose {', '.join(TRT_DTYPES)}")
    key = plan_key(onnx_file, spec, dtype, device_index)
    path = plan_path(onnx_file, out_dir, dtype, key)
    hit, why = cache.lookup(path, key)
    if hit and not force:
        if log:
            log(f"{spec.name}: cached {path}")
        return path
    if log:
        log(f"{spec.name}: building TensorRT {dtype} plan ({why}); this takes minutes")
    data = _build_bytes(onnx_file, spec, dtype, workspace_gib)
    cache.store(path, key, lambda p: p.write_bytes(data), model=spec.name, onnx=str(onnx_file), dtype=dtype,
                trt=trt.__version__, gpu=gpu_name(device_index), profile=list(spec.profile))
    if log:
        log(f"{spec.name}: built {path}")
    return path
