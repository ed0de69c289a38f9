"""host: CPU facts parsed from /proc/cpuinfo text, the device resolver, and the optional-import helper."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch

from augpaint_fast import host
from augpaint_fast.errors import AugPaintError


def cpuinfo(model: str | None, flags: str, cores: list[tuple[int, int]], mhz: str | None = "2100.000",
            flags_key: str = "flags") -> str:
    """/proc/cpuinfo text, one block per logical CPU: (physical id, core id) each; no ids when ``model`` is None
    (as ARM kernels write it)."""
    blocks = []
    for n, (package, core) in enumerate(cores):
        lines = [f"processor\t: {n}"]
        if model is not None:
            lines += [f"model name\t: {model}", f"physical id\t: {package}", f"core id\t\t: {core}"]
        if mhz is not None:
            lines.append(f"cpu MHz\t\t: {mhz}")
        lines.append(f"{flags_key}\t\t: {flags}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


# two physical cores with two hardware threads each: logical CPUs 0 and 2 share core 0, 1 and 3 core 1
SKYLAKE = cpuinfo("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni",
                  [(0, 0), (0, 1), (0, 0), (0, 1)])
GENOA = cpuinfo("AMD EPYC 9654 96-Core Processor", "fpu avx avx2 avx512f avx512_bf16 avx512_vnni",
                [(0, 0), (0, 1), (1, 0), (1, 1)], mhz="3700.125")
SAPPHIRE = cpuinfo("Intel(R) Xeon(R) Platinum 8480+", "avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8",
                   [(0, 0), (0, 1)])
GRAVITON = cpuinfo(None, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16", [(0, 0)] * 4, mhz=None,
                   flags_key="Features")


def test_intel_avx512_without_bf16():
    cpu = host.parse_cpuinfo(SKYLAKE)
    assert cpu.model == "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz" and cpu.mhz == 2100.0
    assert (cpu.logical, cpu.physical) == (4, 2)
    assert cpu.avx2 and cpu.avx512 and cpu.vnni
    assert not cpu.bf16 and not cpu.avx512_bf16 and not cpu.amx
    assert cpu.simd == ["avx2", "avx512f"]


def test_affinity_counts_only_the_cpus_this_process_may_use():
    assert (host.parse_cpuinfo(SKYLAKE, {0, 2}).logical, host.parse_cpuinfo(SKYLAKE, {0, 2}).physical) == (2, 1)
    assert host.parse_cpuinfo(SKYLAKE, {0, 1}).physical == 2
    assert host.parse_cpuinfo(GENOA, {2, 3}).physical == 2  # the same core ids on another package count apart


def test_amd_epyc_with_avx512_bf16():
    cpu = host.parse_cpuinfo(GENOA)
    assert cpu.model.startswith("AMD EPYC 9654") and cpu.mhz == 3700.125
    assert (cpu.logical, cpu.physical) == (4, 4)
    assert cpu.bf16 and cpu.avx512_bf16 and cpu.vnni and not cpu.amx
    assert cpu.simd == ["avx2", "avx512f", "avx512_bf16"]


def test_intel_amx():
    cpu = host.parse_cpuinfo(SAPPHIRE)
    assert cpu.amx and cpu.bf16 and cpu.simd == ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]


def test_arm_or_unknown_host_falls_back_without_error():
    cpu = host.parse_cpuinfo(GRAVITON)
    assert cpu.model == (platform.processor() or platform.machine()) and cpu.mhz is None
    assert (cpu.logical, cpu.physical) == (4, 4)  # no core ids: every logical CPU counts (not 1)
    assert "asimd" in cpu.flags and not cpu.bf16 and not cpu.avx2 and cpu.simd == []
    empty = host.parse_cpuinfo("", {0, 1, 2})  # no /proc/cpuinfo at all
    assert (empty.logical, empty.physical, empty.flags) == (3, 3, frozenset())


@pytest.mark.skipif(not Path(host.CPUINFO).is_file(), reason="no /proc/cpuinfo on this host")
def test_this_host_is_read_once_and_agrees_with_its_text():
    assert host.cpu() is host.cpu()
    assert 1 <= host.physical_cores() <= host.cpu().logical
    with open(host.CPUINFO, encoding="utf-8") as fh:
        assert host.cpu() == host.parse_cpuinfo(fh.read(), host._affinity())


def test_resolve_device_default_is_cuda_when_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert host.resolve_device(None) == torch.device("cpu")
    assert host.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert host.resolve_device(None) == torch.device("cuda", 0)  # explicit index: compares equal to a tensor's
    with pytest.raises(AugPaintError, match=r"cuda:3: only 1 CUDA device\(s\) visible"):
        host.resolve_device("cuda:3")


def test_resolve_device_refuses_in_one_line(monkeypatch):
    with pytest.raises(AugPaintError, match="is not a device") as bad:
        host.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AugPaintError, match="cuda: no CUDA GPU is visible to torch") as absent:
        host.resolve_device("cuda")
    assert "\n" not in str(bad.value) + str(absent.value)


def test_optional_import_names_the_extra():
    assert host.optional_import("json", extra="x", feature="y") is json
    with pytest.raises(AugPaintError) as exc:
        host.optional_import("augpaint_no_such_module", extra="onnx", feature="the onnx engine")
    assert str(exc.value) == "the onnx engine needs augpaint_no_such_module: pip install 'augpaint-fast[onnx]'"
    with pytest.raises(AugPaintError, match=r"\[seg\]', i.e. pip install monai$"):
        host.optional_import("augpaint_no_such_module", extra="seg", feature="segmentation", packages="monai")
    assert host.missing("json", "augpaint_no_such_module") == ["augpaint_no_such_module"]
