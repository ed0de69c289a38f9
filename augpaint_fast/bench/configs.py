"""What `augpaint-fast bench` measures: engine configurations as data, one label each.

A configuration is an engine name (``augpaint_fast.engines.ENGINES``) plus the options its constructor takes
(dtype, channels_last, cuda_graphs, ...). To measure a new engine or option, add a line to ``CONFIGS`` (or pass
``--configs ENGINE:KEY=VALUE,...`` on the command line); the bench times AugPaint and latent RePaint over each
configuration, next to the two baselines (eager loop, pixel RePaint) that run on plain PyTorch float32.

Three kinds of rows: ``default`` ones run unless ``--configs`` names others; ``combined`` ones (issue 18's
combinations: int8, int8 + feature caching, N workers of the lower precisions) also run with ``--combined``;
the rest only when named. ``workers`` > 0: N engines of one thread each, each taking whole batches at once (the
``--workers N`` of ``sample`` and ``serve``; ``WORKERS_PER_CORE``: one per physical core), timed by
``bench.workers``. An int8 row first makes its int8 exports (``bench.int8``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import AugPaintError

# Options the bench supplies from its own flags (--engine-cache, --threads) to the engines that take them.
RUNTIME_OPTIONS: dict[str, tuple[str, ...]] = {"onnx": ("cache_dir", "threads"), "trt": ("cache_dir",),
                                                "openvino": ("cache_dir", "threads")}
DEFAULT_DTYPE = {"trt": "float16"}  # an engine's dtype when its options do not name one (else float32)
WORKERS_PER_CORE = -1  # a ``workers`` value: one worker per physical core (``job.workers.default_workers``)


@dataclass(frozen=True)
class BenchConfig:
    """One engine configuration: ``label`` in tables and JSON, ``engine`` name, constructor ``options``, the
    device types it makes sense on, whether it is in the default set there or in the ``--combined`` one, and its
    worker processes (module docstring)."""

    label: str
    engine: str
    options: dict = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu", "cuda")
    default: bool = True
    combined: bool = False  # opt-in with --combined
    workers: int = 0  # 0: one engine in the bench's process; N: N one-thread engine processes at once

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
    # Issue 18's combinations, behind --combined. Every core busy: one one-thread engine per physical core (each
    # repeat runs N whole batches, a third of the default bench's time when it was a default row). int8: NNCF
    # post-training quantization, calibrated on the bench's own sampling runs.
    BenchConfig("openvino-fp32-workers", "openvino", {"dtype": "float32"}, devices=("cpu",), default=False,
                combined=True, workers=WORKERS_PER_CORE),
    BenchConfig("openvino-int8", "openvino", {"dtype": "int8"}, devices=("cpu",), default=False, combined=True),
    BenchConfig("openvino-int8-c3", "openvino", {"dtype": "int8", "cache_interval": 3}, devices=("cpu",),
                default=False, combined=True),
    *(BenchConfig(f"openvino-{name}-workers", "openvino", options, devices=("cpu",), default=False, combined=True,
                  workers=WORKERS_PER_CORE)
      for name, options in (("bf16", {"dtype": "bfloat16"}), ("int8", {"dtype": "int8"}),
                            ("bf16-c3", {"dtype": "bfloat16", "cache_interval": 3}),
                            ("int8-c3", {"dtype": "int8", "cache_interval": 3}))),
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
    """A label from ``CONFIGS`` or ``ENGINE[:KEY=VALUE,...]`` (values: true/false, numbers, else strings; the key
    ``workers=N`` is the row's worker processes, not an engine option)."""
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
    workers = options.pop("workers", 0)
    if "workers=" in rest and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise AugPaintError(f"bench config {spec!r}: workers must be an integer >= 1, got {workers!r}")
    return BenchConfig(spec, engine, options, workers=workers)


def default_configs(device_type: str, combined: bool = False) -> tuple[list[BenchConfig], dict[str, str]]:
    """(the default configurations runnable here, and with ``combined`` the combined ones; {label: why skipped}
    for the others)."""
    from .. import host
    from ..engines import engine_status

    status = engine_status()
    run, skipped = [], {}
    for cfg in CONFIGS:
        if not (cfg.default or combined and cfg.combined) or device_type not in cfg.devices:
            continue
        why = status.get(cfg.engine)
        if why is None and device_type == "cpu" and cfg.dtype == "bfloat16" and not host.cpu().bf16:
            why = "this CPU has no native bf16 (AVX512-BF16 or AMX)"
        if why is None and cfg.dtype == "int8":
            why = int8_missing()
        if why is None:
            run.append(cfg)
        else:
            skipped[cfg.label] = why
    return run, skipped


def int8_missing() -> str | None:
    """Why int8 rows cannot run here (NNCF, which makes their exports, is not installed), or None."""
    from ..export.int8 import require_nncf

    try:
        require_nncf()
    except AugPaintError as exc:
        return str(exc)
    return None
