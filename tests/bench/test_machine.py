"""Machine identity, limits and timing helpers."""
import time
from pathlib import Path

import pytest
import torch

from augpaint_fast import host
from augpaint_fast.bench.machine import (CpuMeter, Timing, machine_info, measure, other_cpus, provenance,
                                         theoretical_peak, versions)


def test_timing_is_median_quartiles_and_range():
    t = Timing.of([3.0, 1.0, 2.0, 4.0, 5.0])
    assert (t.median, t.min, t.max, t.repeats) == (3.0, 1.0, 5.0, 5)
    assert (t.q1, t.q3, t.iqr) == (2.0, 4.0, 2.0)
    one = Timing.of([1.5])
    assert (one.q1, one.median, one.q3, one.iqr) == (1.5, 1.5, 1.5, 0)


def test_measure_warms_up_then_times_each_repeat():
    calls = []
    t = measure(lambda: calls.append(1), "cpu", repeats=4, warmup=2)
    assert len(calls) == 6 and t.repeats == 4 and 0 <= t.min <= t.median <= t.max


def test_machine_and_versions_name_what_ran():
    info = machine_info("cpu")
    assert info["cpu_model"] and info["logical_cpus"] >= 1 and info["physical_cores"] >= 1
    assert info["torch_threads"] == torch.get_num_threads() and info["device"] == "cpu"
    assert (info["gpu"] is None) == (not torch.cuda.is_available())
    v = versions()
    assert v["torch"] == torch.__version__ and "onnxruntime" in v


def _cpu(model: str, flags: str, mhz: str = "2400.000") -> host.CpuFacts:
    return host.parse_cpuinfo(f"processor\t: 0\nmodel name\t: {model}\ncpu MHz\t: {mhz}\nflags\t: {flags}\n")


def test_theoretical_peak_is_cores_clock_and_flops_per_cycle_where_known():
    zen4 = _cpu("AMD EPYC 9654 96-Core Processor", "fma avx2 avx512f avx512_bf16")
    fp32 = theoretical_peak("float32", 2, zen4)
    assert fp32["gflops"] == 2 * 2.4 * 32 and fp32["uarch"] == "Zen 4"
    assert theoretical_peak("bfloat16", 2, zen4)["gflops"] == 2 * 2.4 * 64
    milan = _cpu("AMD EPYC 7763 64-Core Processor", "fma avx2")
    assert theoretical_peak("float32", 4, milan)["gflops"] == 4 * 2.4 * 32
    assert theoretical_peak("bfloat16", 4, milan)["gflops"] is None  # no bf16 units: unknown, not a guess
    generic = theoretical_peak("float32", 2, _cpu("AMD EPYC", "fma avx2"))
    assert generic["gflops"] is None and "names no microarchitecture" in generic["why"]


def test_provenance_names_commit_load_threads_env_and_a_busy_machine(monkeypatch):
    monkeypatch.setenv("AUGPAINT_TEST_VAR", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("UNRELATED_VAR", "x")
    cpus = host.cpu().logical
    quiet = provenance([0.0, 0.0, 0.0], [0.1, 0.0, 0.0])
    assert quiet["busy_machine"] is False and quiet["load_after"] == [0.1, 0.0, 0.0]
    assert quiet["env"]["AUGPAINT_TEST_VAR"] == "1" and quiet["env"]["OMP_NUM_THREADS"] == "1"
    assert "UNRELATED_VAR" not in quiet["env"] and quiet["threads"]["torch"] == torch.get_num_threads()
    assert quiet["git_commit"] is None or len(quiet["git_commit"].split("+")[0]) == 40
    assert provenance([0.5 * cpus + 0.1, 0.0, 0.0])["busy_machine"] is True
    # where other processes' CPU use during the run was measured, it decides (the load average lags a minute and
    # counts the bench's own threads)
    assert provenance([cpus, cpus, cpus], other_during=0.1)["busy_machine"] is False
    assert provenance([0.0, 0.0, 0.0], other_during=0.2 * cpus + 0.05)["busy_machine"] is True


def test_other_cpus_is_machine_busy_time_minus_own():
    # (wall, machine busy CPU-seconds, own CPU-seconds): 10 s wall, the machine busy 15 CPU-s, this process 9
    assert other_cpus((100.0, 50.0, 3.0), (110.0, 65.0, 12.0)) == 0.6
    assert other_cpus((0.0, 0.0, 0.0), (1.0, 1.0, 1.2)) == 0.0  # clock-tick rounding never goes negative


def _spin(seconds: float) -> None:
    t = time.monotonic()
    while time.monotonic() - t < seconds:
        pass


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="CpuMeter reads Linux's /proc/stat")
def test_cpu_meter_reads_this_process_within_the_machines_busy_time():
    # this process's CPU time is read, and the machine's busy time includes it (so other() leaves it out). How
    # much another process adds is not asserted live: on a saturated 2-core CI machine a spinner gets what the
    # scheduler gives it (the arithmetic is test_other_cpus_is_machine_busy_time_minus_own)
    meter = CpuMeter()
    _spin(1.0)
    end = CpuMeter._read()
    own, machine = end[2] - meter.start[2], end[1] - meter.start[1]
    assert own > 0.05 and machine >= own - 0.05, (own, machine)
    assert meter.other() >= 0
