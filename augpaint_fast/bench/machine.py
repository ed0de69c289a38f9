"""The machine a benchmark ran on and what it can do: identity, dense peak per dtype, memory bandwidth, timing.

- Dense peak (DESIGN.md §6): the best FLOP/s of a large matmul and a large 3x3 convolution (channels-last),
  measured in the same run and dtype as the figures it divides; FLOPs are 2 per multiply-add. The bench probes
  it at the start and at the end of a run and reports both (the spread says how much the machine moved).
- Theoretical peak (``theoretical_peak``): cores x clock x FLOPs per cycle per core of the dtype, where the CPU
  model names a microarchitecture whose vector units are known (``FLOPS_PER_CYCLE``); None ("unknown")
  otherwise, never a guess.
- Bandwidth: ``dst.copy_(src)`` of a large buffer, bytes read + written per second.
- Timing: warm up, synchronise the device before and after (``torch.cuda.synchronize`` on CUDA), then the
  median, interquartile range and range of repeats (``measure``, ``Timing``: the one timing helper of the
  project's benchmarks).
- Provenance (``provenance``): git commit, load average, thread settings and the environment variables that
  change speed, for every record, and the CPUs other processes used during the run (``CpuMeter``): a run
  where they used more than a fifth of the CPUs is flagged busy. The load average alone cannot say: it
  lags a minute, so a bench right after another read busy, and it counts the bench's own threads.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
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
    """Seconds over repeats: median, quartiles (q1, q3; both the median for one repeat), min, max, how many."""

    median: float
    min: float
    max: float
    repeats: int
    q1: float
    q3: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else seconds * 3
        return cls(statistics.median(seconds), min(seconds), max(seconds), len(seconds), q1, q3)

    @property
    def iqr(self) -> float:
        """Interquartile range, seconds."""
        return self.q3 - self.q1


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


# FLOPs per cycle per physical core (2 per multiply-add) of the dense units, by microarchitecture; a CPU model
# name is matched against the patterns in order. AMD EPYC: the last digit of the model number is its
# generation (Zen 4 runs AVX-512 on 256-bit datapaths: two FMA pipes of 8 float32 lanes; Zen 5 on 512-bit
# ones); Intel Xeon Platinum 8xxx / Gold 6xxx: two AVX-512 FMA ports, and on the 4th and 5th generations AMX
# (1,024 bf16 FLOPs per cycle, Intel's figure). A dtype is counted only when the CPU flags confirm its units.
FLOPS_PER_CYCLE: tuple[tuple[str, str, dict[str, int]], ...] = (
    (r"AMD EPYC [4789]\w\w1\b", "Zen", {"float32": 16}),
    (r"AMD EPYC [4789]\w\w[23]\b", "Zen 2/3", {"float32": 32}),
    (r"AMD EPYC [4789]\w\w4\b", "Zen 4", {"float32": 32, "bfloat16": 64}),
    (r"AMD EPYC [4789]\w\w5\b", "Zen 5", {"float32": 64, "bfloat16": 128}),
    (r"Xeon\(R\) (Platinum 8|Gold 6)[45]\d\d", "Xeon Scalable 4th/5th gen", {"float32": 64, "bfloat16": 1024}),
    (r"Xeon\(R\) (Platinum 8|Gold 6)[123]\d\d", "Xeon Scalable 1st-3rd gen", {"float32": 64}),
)
DTYPE_FLAGS = {"float32": lambda c: c.avx2 or c.avx512, "bfloat16": lambda c: c.avx512_bf16 or c.amx}


def theoretical_peak(dtype: str, cores: int, cpu: host.CpuFacts | None = None) -> dict:
    """{"gflops", "uarch", "flops_per_cycle", "cores", "ghz", "why"}: ``cores`` x clock x FLOPs per cycle of
    ``dtype`` on this CPU (``FLOPS_PER_CYCLE``); "gflops" None, with "why", where the model, its units for
    ``dtype`` or the clock are unknown. The clock is the kernel's current "cpu MHz" (boost clocks differ)."""
    cpu = cpu or host.cpu()
    out = {"gflops": None, "uarch": None, "flops_per_cycle": None, "cores": cores,
           "ghz": cpu.mhz / 1e3 if cpu.mhz else None, "why": None}
    match = next(((uarch, table) for pattern, uarch, table in FLOPS_PER_CYCLE if re.search(pattern, cpu.model)),
                 None)
    if match is None:
        return {**out, "why": f"CPU model {cpu.model!r} names no microarchitecture with known vector units"}
    uarch, table = match
    per_cycle = table.get(dtype) if DTYPE_FLAGS.get(dtype, lambda c: False)(cpu) else None
    if per_cycle is None:
        return {**out, "uarch": uarch, "why": f"{uarch}: no known dense {dtype} units"}
    if not cpu.mhz:
        return {**out, "uarch": uarch, "flops_per_cycle": per_cycle, "why": "the kernel gives no clock"}
    return {**out, "uarch": uarch, "flops_per_cycle": per_cycle, "gflops": cores * cpu.mhz / 1e3 * per_cycle}


ENV_PREFIXES = ("OMP_", "MKL_", "KMP_", "OPENBLAS_", "AUGPAINT_", "CUDA_VISIBLE_DEVICES")


def git_commit() -> str | None:
    """The checkout's commit this package was imported from ("+dirty" when tracked files changed), or None
    outside a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


class CpuMeter:
    """CPU-seconds per second that OTHER processes used over an interval: the machine's busy CPU time
    (``/proc/stat``: every state but idle and iowait) minus this process's own and its waited-for children's
    (``os.times``: the engines' threads, the bench's worker processes). Linux only; elsewhere ``other()`` is
    None."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # user..steal, no idle/iowait
        t = os.times()
        return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system

    def other(self) -> float | None:
        """Other processes' CPUs (1.0 = one CPU kept busy) since the meter started."""
        end = self._read()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return other_cpus(self.start, end)


def other_cpus(start: tuple[float, float, float], end: tuple[float, float, float]) -> float:
    """(machine busy seconds - own CPU seconds) / wall seconds between two (wall, busy, own) readings, >= 0."""
    wall = end[0] - start[0]
    return round(max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / wall, 3)


BUSY_SHARE = 0.2  # other processes using more than this share of the CPUs make a run busy


def provenance(load_before: list[float] | None, load_after: list[float] | None = None,
               other_during: float | None = None) -> dict:
    """What a record needs to be reproduced and trusted: git commit, load average before and after the run,
    the CPUs other processes used during it (``CpuMeter``), thread settings, the environment variables that
    change speed (``ENV_PREFIXES``), and ``busy_machine``: other processes used more than ``BUSY_SHARE`` of the
    CPUs during the run (where that was not measured: the 1-minute load before the run above half the CPUs).
    A busy run's figures are not results."""
    logical = host.cpu().logical
    busy = (other_during > BUSY_SHARE * logical if other_during is not None
            else bool(load_before) and load_before[0] > 0.5 * logical)
    return {"git_commit": git_commit(), "load_before": load_before, "load_after": load_after,
            "other_cpus_during": other_during, "busy_machine": busy,
            "threads": {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(),
                        "logical_cpus": logical},
            "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}}
