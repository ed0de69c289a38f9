"""The settings that fix a sample: one frozen record, and the views of it that the project stores.

With the seed, the source id and k (``core.rng``), the weights and the batch size, a :class:`SampleSettings`
fixes a sample's bytes; engines agree to floating-point reassociation, so the engine is not part of it. Three
places store it, each in the shape it always had, so that folders and pipeline runs made before the record
existed still resume:

- ``run_config.json`` of a sampling job (:meth:`SampleSettings.run_config`; ``OutputWriter`` compares it on
  resume): the seven sampling knobs always, ``variant``, ``dtype`` and ``cache_interval`` only when they are
  not the default (they were added later).
- the library API's ``AugPaint.settings`` (:meth:`SampleSettings.as_dict`, every field).
- a pipeline sampling stage's fingerprint (:meth:`SampleSettings.stage_settings`): the knobs the pipeline has
  always recorded, the others only when they are not the default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FLOAT32 = (None, "float32", "fp32")  # spellings of the full-precision U-Net, recorded as None


@dataclass(frozen=True)
class SampleSettings:
    """Every setting that changes a sample's bytes by more than floating-point reassociation."""

    steps: int = 50
    eta: float = 1.0
    mask_mode: str = "box"
    margin: int = 0
    flip: str = "none"
    output_size: str = "model"
    paste_back: bool = False
    variant: str = "uncond"  # "cond": the conditional U-Net of paper §3.1 (weights/unet-cond)
    dtype: Any = None  # the U-Net's reduced dtype (an engine option); None = float32
    cache_interval: int = 1  # feature caching (an engine option); 1 = off

    def __post_init__(self):
        if self.dtype in FLOAT32:
            object.__setattr__(self, "dtype", None)

    @classmethod
    def of(cls, opts) -> "SampleSettings":
        """The record of a ``job.generate.SampleOptions`` (dtype and cache_interval from its engine options)."""
        return cls(steps=opts.steps, eta=opts.eta, mask_mode=opts.mask_mode, margin=opts.margin, flip=opts.flip,
                   output_size=opts.output_size, paste_back=opts.paste_back, variant=opts.variant,
                   dtype=opts.engine_options.get("dtype"), cache_interval=opts.engine_options.get("cache_interval", 1))

    def engine_options(self) -> dict:
        """The engine options this record sets (dtype, cache_interval), only those that are not the default."""
        return self._changed(("dtype", "cache_interval"))

    def as_dict(self) -> dict:
        return asdict(self)

    def run_config(self, seed: int, weights_sha256: str, data: dict | None = None) -> dict:
        """A sampling job's ``run_config.json``; ``data`` is the dataset's fingerprint (None: no dataset)."""
        config = {"seed": seed, "weights_sha256": weights_sha256, "steps": self.steps, "eta": self.eta,
                  "mask_mode": self.mask_mode, "margin": self.margin, "flip": self.flip,
                  "output_size": self.output_size, "paste_back": self.paste_back,
                  **self._changed(("variant", "dtype", "cache_interval"))}
        if data is not None:
            config["data"] = data
        return config

    def stage_settings(self, n: int, seed: int, engine: str) -> dict:
        """The settings of a pipeline sampling stage (``pipeline.stages.fingerprint``), ``n`` samples per source."""
        settings = {"n": n, "steps": self.steps, "mask_mode": self.mask_mode, "seed": seed, "flip": self.flip,
                    "paste_back": self.paste_back, "engine": engine, "variant": self.variant}
        return {**settings, **self._changed(("margin", "eta", "output_size", "dtype", "cache_interval"))}

    def _changed(self, names: tuple[str, ...]) -> dict:
        """``names`` whose value is not the default, in that order."""
        default = SampleSettings()
        return {name: getattr(self, name) for name in names if getattr(self, name) != getattr(default, name)}
