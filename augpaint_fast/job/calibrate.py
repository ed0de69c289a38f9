"""Calibration data for the int8 U-Net (``export.int8``): the U-Net's inputs along real sampling trajectories.

The first ``images`` labelled sources of a dataset (sorted ids) are sampled once each (sample k = 0, box masks,
no flip) with the weights on the eager float32 torch engine, over the whole DDIM schedule of ``steps`` steps,
and every U-Net call's (z_t, t) is recorded: the latents the int8 model will meet, at every timestep, noise and
known region alike. Nothing is sampled until ``Calibration.record`` runs, i.e. only on a cache miss.
``trajectory_feeds`` records the same from a batch already in memory (the bench's own sampling runs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.schedule import DDIMSchedule
from ..data import Dataset, NiftiOptions
from ..engines import sample
from ..errors import AugPaintError
from ..export.int8 import Calibration
from .generate import Generator, SampleOptions, check_options, data_fingerprint, load_sources, model_image_size, work_item

CALIBRATION_IMAGES = 4
CALIBRATION_STEPS = 50


class _Recorder:
    """An engine that records each U-Net call's inputs and runs the wrapped engine (no whole-loop graph, so the
    sampler calls ``denoiser`` at every step)."""

    def __init__(self, engine):
        self.inner, self.name, self.device = engine, engine.name, engine.device
        self.feeds: list[dict[str, np.ndarray]] = []

    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        self.feeds.append({"z": z.detach().cpu().numpy().copy(), "t": t.detach().cpu().numpy().copy()})
        return self.inner.denoiser(z, t, cond)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode(x)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(h)


def trajectory_feeds(engine, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                     schedule: DDIMSchedule) -> list[dict[str, np.ndarray]]:
    """Each U-Net call's inputs along one sampling run of a batch on ``engine`` (``engines.sample`` arguments)."""
    recorder = _Recorder(engine)
    with torch.no_grad():
        sample(recorder, z0, mask, uids, seed, schedule)
    return recorder.feeds


def calibration(data: Path, weights: Path, *, images: int = CALIBRATION_IMAGES, steps: int = CALIBRATION_STEPS,
                seed: int = 0, nifti: NiftiOptions | None = None) -> Calibration:
    """The calibration of ``weights``' U-Net on ``data`` (read and checked now; sampled only by ``record``)."""
    if images < 1:
        raise AugPaintError(f"calibration_images must be >= 1, got {images}", param="calibration_images")
    sources = load_sources(Dataset.open(data, nifti=nifti), model_image_size(weights), progress=False)
    sources = [src for src in sorted(sources, key=lambda s: s.id) if (src.label > 0).any()][:images]
    if not sources:
        raise AugPaintError(f"{data} has no labelled image with a non-empty label to calibrate the int8 U-Net on")
    opts = SampleOptions(n=1, steps=steps, seed=seed, batch_size=len(sources), engine="torch", nifti=nifti)
    check_options(opts)

    def record() -> list[dict[str, np.ndarray]]:
        generator = Generator(weights, opts)
        recorder = _Recorder(generator.engine)
        generator.engine = recorder
        with torch.no_grad():
            generator.generate([work_item(src, 0, seed, "none") for src in sources], seed)
        return recorder.feeds

    fingerprint = dict(data=data_fingerprint(sources), images=len(sources), steps=steps, eta=opts.eta,
                       seed=seed, mask=opts.mask_mode)
    return Calibration(fingerprint, record)
