"""Machine identity, limits and timing helpers."""
import torch

from augpaint_fast.bench.machine import Timing, machine_info, measure, versions


def test_timing_is_median_and_range():
    t = Timing.of([3.0, 1.0, 2.0])
    assert (t.median, t.min, t.max, t.repeats) == (2.0, 1.0, 3.0, 3)


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
