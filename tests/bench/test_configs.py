"""Engine configurations as data: labels, ENGINE:KEY=VALUE specs, defaults that can run here."""
import pytest

from augpaint_fast.bench.configs import CONFIGS, BenchConfig, default_configs, parse_config
from augpaint_fast.engines import engine_status
from augpaint_fast.errors import AugPaintError


def test_labels_and_specs():
    assert parse_config("torch-bf16") == BenchConfig("torch-bf16", "torch", {"dtype": "bfloat16"})
    cfg = parse_config("torch:dtype=bfloat16,channels_last=true,batch_sizes=8")
    assert (cfg.engine, cfg.options) == ("torch", {"dtype": "bfloat16", "channels_last": True, "batch_sizes": 8})
    assert cfg.dtype == "bfloat16" and cfg.cache_interval == 1
    assert parse_config("trt-fp16").dtype == "float16" and parse_config("onnx-fp32").dtype == "float32"
    assert len({c.label for c in CONFIGS}) == len(CONFIGS)
    with pytest.raises(AugPaintError, match="unknown bench config"):
        parse_config("tensorflow")
    with pytest.raises(AugPaintError, match="KEY=VALUE"):
        parse_config("torch:dtype")


def test_defaults_are_runnable_here_and_say_why_not():
    run, skipped = default_configs("cpu")
    labels = {c.label for c in run}
    assert "torch-fp32" in labels and not labels & {"trt-fp16", "torch-fp16"}
    status = engine_status()
    assert ("onnx-fp32" in labels) == (status["onnx"] is None)
    for label, why in skipped.items():
        assert why  # one line naming what is missing
