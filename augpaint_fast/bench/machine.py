"""The machine a benchmark ran on and what it can do: identity, dense peak per dtype, memory bandwidth, timing.

- Dense peak (DESIGN.md §6): the best FLOP/s of a large matmul and a large 3x3 convolution (channels-last),
  measured in the same run and dtype as the figures it divides; FLOPs are 2 per multiply-add.
- Bandwidth: ``dst.copy_(src)`` of a large buffer, bytes read + written per second.
- Timing: warm up, synchronise the device before and after (``torch.cuda.synchronize`` on CUDA), then the
  median and range of repeats (gpt-fast's rule).
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .. import host


def sync(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds over repeats: median, min, max, and how many."""

    median: float
    min: float
    max: float
    repeats: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        return cls(statistics.median(seconds), min(seconds), max(seconds), len(seconds))


def seconds_of(fn: Callable[[], object], device: torch.device | str) -> float:
    """Wall seconds of one ``fn()`` with the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def measure(fn: Callable[[], object], device: torch.device | str, repeats: int, warmup: int = 1) -> Timing:
    """``warmup`` untimed calls, then ``repeats`` timed ones."""
    for _ in range(warmup):
        fn()
    return Timing.of([seconds_of(fn, device) for _ in range(repeats)])


@torch.inference_mode()
def dense_peak(dtype: torch.dtype, device: torch.device | str = "cpu", repeats: int = 3) -> dict:
    """{"gflops", "kernel", "matmul_gflops", "conv_gflops"}: the best of an n^3 matmul and a 3x3 convolution
    (B x 256 -> 256 channels, 64 x 64, channels-last) in ``dtype`` on ``device``, best of ``repeats``. CPU:
    n = 2048 and B = 8 (half a second a dtype on 2 cores; smaller sizes under-read the peak); CUDA: n = 8192,
    B = 32."""
    device = torch.device(device)
    big = device.type == "cuda"
    n = 8192 if big else 2048
    batch = 32 if big else 8
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    mm = 2 * n**3 / measure(lambda: a @ b, device, repeats).min
    x = torch.randn(batch, 256, 64, 64, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
    cv = 2 * batch * 256 * 256 * 9 * 64 * 64 / measure(lambda: conv(x), device, repeats).min
    best, kernel = (mm, "matmul") if mm >= cv else (cv, "conv3x3")
    return {"gflops": best / 1e9, "kernel": kernel, "matmul_gflops": mm / 1e9, "conv_gflops": cv / 1e9}


def memory_bandwidth_gbs(device: torch.device | str = "cpu", repeats: int = 5) -> float:
    """Copy bandwidth (read + write bytes per second, GB/s) of a 256 MiB buffer (1 GiB on CUDA), best of
    ``repeats``."""
    device = torch.device(device)
    nbytes = (1 << 30) if device.type == "cuda" else (256 << 20)
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / measure(lambda: dst.copy_(src), device, repeats).min / 1e9


def machine_info(device: torch.device | str = "cpu") -> dict:
    """Who measured: CPU model and clock, logical CPUs usable, physical cores, SIMD, threads, GPU (name, memory),
    OS (``host``'s facts)."""
    device = torch.device(device)
    cpu = host.cpu()
    info = {
        "cpu_model": cpu.model,
        "cpu_mhz": cpu.mhz,
        "logical_cpus": cpu.logical,
        "physical_cores": cpu.physical,
        "cpu_simd": cpu.simd,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": None,
    }
    if torch.cuda.is_available():
        index = (device.index or 0) if device.type == "cuda" else torch.cuda.current_device()
        info["gpu"] = {**host.gpu(index), "tf32_conv": torch.backends.cudnn.allow_tf32,
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    return info


def versions() -> dict:
    """torch, onnxruntime, onnx, numpy and Python versions (None where not installed)."""
    import importlib.metadata as md

    import numpy as np

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt", "openvino", "augpaint-fast"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out
