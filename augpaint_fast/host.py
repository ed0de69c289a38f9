"""What this host has: its CPU, its GPU, the device a run uses, and the optional packages installed.

- CPU facts come from the kernel's ``/proc/cpuinfo`` text (``parse_cpuinfo`` takes the text, so any host can
  be described in a test) and this process's CPU affinity; ``cpu()`` reads them once per process. A host
  without ``/proc/cpuinfo`` (or a field of it) gets the fallback each field documents, never an error.
- ``resolve_device(None)`` is CUDA when torch sees a GPU, else the CPU: the one default. Callers with another
  default (the engines run on the CPU unless told) pass it explicitly.
- ``optional_import(module, extra=..., feature=...)`` imports an optional dependency or raises one line naming
  the extra to install (``pip install 'augpaint-fast[extra]'``); ``missing(...)`` only looks, importing nothing.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from .errors import AugPaintError

CPUINFO = "/proc/cpuinfo"
# the SIMD flags a benchmark report names, in this order
SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuFacts:
    """One host's CPU as this process sees it.

    ``model``: the kernel's "model name" (else ``platform.processor()`` or the machine type); ``mhz``: the
    first processor's current clock ("cpu MHz"), None where the kernel does not say; ``logical``: CPUs this
    process may run on; ``physical``: distinct (package, core) pairs among them (``logical`` where the kernel
    gives no core ids, as on ARM); ``flags``: the x86 "flags" (or ARM "Features") of the first processor.
    """

    model: str
    mhz: float | None
    logical: int
    physical: int
    flags: frozenset[str] = field(repr=False)

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def amx(self) -> bool:
        """Intel AMX tiles (``amx_tile``); ``amx_bf16`` is their bf16 multiply."""
        return "amx_tile" in self.flags or "amx_bf16" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products: AVX512-VNNI or AVX-VNNI."""
        return "avx512_vnni" in self.flags or "avx_vnni" in self.flags

    @property
    def bf16(self) -> bool:
        """Native bf16 dot products (AVX512-BF16 or AMX-BF16): where bf16 inference beats float32."""
        return self.avx512_bf16 or "amx_bf16" in self.flags

    @property
    def simd(self) -> list[str]:
        """The ``SIMD_FLAGS`` this CPU has, in that order."""
        return [f for f in SIMD_FLAGS if f in self.flags]

    @property
    def fingerprint(self) -> str:
        """Machine type, model and flags: what compiled, hardware-specific code depends on (a cache key part)."""
        return f"{platform.machine()}|{self.model}|{' '.join(sorted(self.flags))}"


def parse_cpuinfo(text: str, allowed: set[int] | None = None) -> CpuFacts:
    """The CPU facts in ``/proc/cpuinfo`` text, counting only the processors in ``allowed`` (None: all)."""
    blocks = [dict(_fields(block)) for block in text.split("\n\n")]
    blocks = [b for b in blocks if "processor" in b and b["processor"].isdigit()]
    if allowed is None:
        allowed = {int(b["processor"]) for b in blocks} or {0}
    mine = [b for b in blocks if int(b["processor"]) in allowed]
    first = mine[0] if mine else blocks[0] if blocks else {}
    cores = {(b.get("physical id"), b["core id"]) for b in mine if "core id" in b}
    logical = max(1, len(allowed))
    try:
        mhz = float(first["cpu MHz"]) if "cpu MHz" in first else None
    except ValueError:
        mhz = None
    return CpuFacts(model=first.get("model name") or platform.processor() or platform.machine(), mhz=mhz,
                    logical=logical, physical=max(1, min(len(cores) or logical, logical)),
                    flags=frozenset((first.get("flags") or first.get("Features") or "").split()))


def _fields(block: str):
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip(), value.strip()


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return set(range(os.cpu_count() or 1))


@cache
def cpu() -> CpuFacts:
    """This host's CPU facts, read once per process (see ``CpuFacts``)."""
    try:
        with open(CPUINFO, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        text = ""
    return parse_cpuinfo(text, _affinity())


def physical_cores() -> int:
    """Physical cores usable by this process: the thread count the CPU runtimes default to."""
    return cpu().physical


@cache
def gpu(index: int = 0) -> dict | None:
    """CUDA GPU ``index`` as {"name", "memory_gib", "count", "cuda"}, or None when torch sees no GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "count": torch.cuda.device_count(), "cuda": torch.version.cuda}


def resolve_device(device=None):
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, any torch device, or None) as a checked ``torch.device``.

    None is CUDA when torch sees a GPU, else the CPU. A CUDA device gets an explicit index (``cuda`` ->
    ``cuda:<current>``) so a tensor's device compares equal to it. A name torch does not know, or a CUDA
    device that is not there, is an AugPaintError of one line.
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise AugPaintError(f"--device {device!r} is not a device ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AugPaintError(f"--device {device}: no CUDA GPU is visible to torch (torch {torch.__version__}; "
                                f"a GPU needs a CUDA build of torch and an NVIDIA driver)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        elif device.index >= torch.cuda.device_count():
            raise AugPaintError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def missing(*modules: str) -> list[str]:
    """The named top-level modules that are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def install_hint(extra: str, packages: str | None = None) -> str:
    """``pip install 'augpaint-fast[extra]'``, then ``, i.e. pip install <packages>`` when they are given."""
    hint = f"pip install 'augpaint-fast[{extra}]'"
    return f"{hint}, i.e. pip install {packages}" if packages else hint


def optional_import(module: str, extra: str, feature: str, packages: str | None = None) -> ModuleType:
    """Import the optional dependency ``module``, or raise one line: "<feature> needs <module>: pip install
    'augpaint-fast[<extra>]'" (``packages``: the plain pip packages behind the extra, named after it)."""
    try:
        __import__(module)  # the import statement's hook, so a test can hide a module by patching it
    except ImportError as exc:
        name = exc.name or module
        raise AugPaintError(f"{feature} needs {name}: {install_hint(extra, packages)}") from None
    return sys.modules[module]
