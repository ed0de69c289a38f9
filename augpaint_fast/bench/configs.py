"""What `augpaint-fast bench` measures: engine configurations as data, one label each.

A configuration is an engine name (``augpaint_fast.engines.ENGINES``) plus the options its constructor takes
(dtype, channels_last, cuda_graphs, ...). To measure a new engine or option, add a line to ``CONFIGS`` (or pass
``--configs ENGINE:KEY=VALUE,...`` on the command line); the bench times AugPaint and latent RePaint over each
configuration, next to the two baselines (eager loop, pixel RePaint) that run on plain PyTorch float32.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import AugPaintError

# Options the bench supplies from its own flags (--engine-cache, --threads) to the engines that take them.
RUNTIME_OPTIONS: dict[str, tuple[str, ...]] = {"onnx": ("cache_dir", "threads"), "trt": ("cache_dir",),
                                                "openvino": ("cache_dir", "threads")}
DEFAULT_DTYPE = {"trt": "float16"}  # an engine's dtype when its options do not name one (else float32)


@dataclass(frozen=True)
class BenchConfig:
    """One engine configuration: ``label`` in tables and JSON, ``engine`` name, constructor ``options``, the
    device types it makes sense on, and whether it is in the default set there."""

    label: str
    engine: str
    options: dict = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu", "cuda")
    default: bool = True

    @property
    def dtype(self) -> str:
        return str(self.options.get("dtype", DEFAULT_DTYPE.get(self.engine, "float32")))

    @property
    def cache_interval(self) -> int:
        """U-Net calls per full evaluation (1: every call runs the whole U-Net)."""
        return int(self.options.get("cache_interval", 1))


CONFIGS: list[BenchConfig] = [
    BenchConfig("torch-fp32", "torch"),
    BenchConfig("torch-bf16", "torch", {"dtype": "bfloat16"}),
    BenchConfig("torch-fp16", "torch", {"dtype": "float16"}, devices=("cuda",)),
    BenchConfig("torch-fp16-graphs", "torch", {"dtype": "float16", "cuda_graphs": True}, devices=("cuda",)),
    BenchConfig("onnx-fp32", "onnx"),
    BenchConfig("trt-fp16", "trt", {"dtype": "float16"}, devices=("cuda",)),
    # CPU speed options. torch-bf16 above runs the fused GroupNorm+SiLU and the flash-attention layout (its
    # defaults in bf16); -autocast is bf16 without them. -cN: feature caching, a full U-Net call every N calls.
    BenchConfig("torch-bf16-autocast", "torch", {"dtype": "bfloat16", "fused_norm": False, "flash_attention": False},
                default=False),
    BenchConfig("torch-fp32-fast", "torch", {"fused_norm": True, "flash_attention": True}, default=False),
    BenchConfig("torch-bf16-compile", "torch", {"dtype": "bfloat16", "compile": "default"}, devices=("cpu",),
                default=False),
    BenchConfig("openvino-fp32", "openvino", {"dtype": "float32"}, devices=("cpu",)),
    BenchConfig("openvino-bf16", "openvino", {"dtype": "bfloat16"}, devices=("cpu",)),
    BenchConfig("torch-bf16-c3", "torch", {"dtype": "bfloat16", "cache_interval": 3}),
    BenchConfig("openvino-bf16-c3", "openvino", {"dtype": "bfloat16", "cache_interval": 3}, devices=("cpu",)),
    *(BenchConfig(f"openvino-bf16-c{n}", "openvino", {"dtype": "bfloat16", "cache_interval": n}, devices=("cpu",),
                  default=False) for n in (2, 5)),
]


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_config(spec: str) -> BenchConfig:
    """A label from ``CONFIGS`` or ``ENGINE[:KEY=VALUE,...]`` (values: true/false, numbers, else strings)."""
    for cfg in CONFIGS:
        if cfg.label == spec:
            return cfg
    engine, _, rest = spec.partition(":")
    from ..engines import ENGINES

    if engine not in ENGINES:
        raise AugPaintError(f"unknown bench config {spec!r}: not one of {', '.join(c.label for c in CONFIGS)}, "
                            f"nor ENGINE:KEY=VALUE,... with an engine in {', '.join(ENGINES)}")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise AugPaintError(f"bench config {spec!r}: expected KEY=VALUE, got {item!r}")
        options[key.strip()] = _value(value.strip())
    return BenchConfig(spec, engine, options)


def default_configs(device_type: str) -> tuple[list[BenchConfig], dict[str, str]]:
    """(the default configurations runnable here, {label: why skipped} for the others)."""
    from .. import host
    from ..engines import engine_status

    status = engine_status()
    run, skipped = [], {}
    for cfg in CONFIGS:
        if not cfg.default or device_type not in cfg.devices:
            continue
        if status.get(cfg.engine) is not None:
            skipped[cfg.label] = status[cfg.engine]
        elif device_type == "cpu" and cfg.dtype == "bfloat16" and not host.cpu().bf16:
            skipped[cfg.label] = "this CPU has no native bf16 (AVX512-BF16 or AMX)"
        else:
            run.append(cfg)
    return run, skipped
