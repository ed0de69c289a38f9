"""The sampling job: a dataset of labelled images in, AugPaint image/label pairs out.

For each labelled source: resize to the model's size, build its known mask (``masks``), encode it once; then
sample batches of (source, k) through the engine (``engines.sample``), decode in batches and write
``OUT/images/<source>_<k>.png``, ``OUT/labels/<source>_<k>.png``, one line per pair in ``OUT/manifest.jsonl``
and ``OUT/preview.png``. Every input is read and checked before anything is written; pairs are written
atomically and recorded as they finish, so an interrupted run loses nothing and a rerun skips what is done.

Device placement has one owner, the job: it runs on ``engine.device`` end to end. Each (source, flip) image is
uploaded once and encoded there, its clean latent and latent-size known mask stay there for its other
samples, and uids, shift and scale are created there; results come back to the host once per batch, after
decoding. Nothing below the job moves tensors between devices (the engines and kernels refuse inputs on
another device).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from . import fused, masks, rng
from .checkpoint import load_weights_folder, weights_sha256
from .data import Dataset, NiftiOptions, OutputWriter, resize_image, resize_pair
from .engines import create_engine, sample
from .errors import AugPaintError
from .preview import make_preview
from .progress import progress as progress_bar
from .data.imageio import read_image
from .schedule import ddim_schedule

PREVIEW_ROWS = 6


@dataclass(frozen=True)
class SampleOptions:
    """Settings of one sampling run (the CLI's ``sample`` flags)."""

    n: int = 4
    steps: int = 50
    eta: float = 1.0
    mask_mode: str = "box"
    margin: int = 0
    flip: str = "none"
    seed: int = 0
    batch_size: int = 8
    engine: str = "torch"
    output_size: str = "model"
    paste_back: bool = False
    max_classes: int = 16
    nifti: NiftiOptions | None = None
    engine_options: dict = field(default_factory=dict)


@dataclass
class Source:
    """One labelled source at the model's size, with what its samples need."""

    id: str
    image_path: Path
    label_path: Path
    image: np.ndarray  # float32 [3, S, S] in [-1, 1]
    label: np.ndarray  # int64 [S, S]
    source_label: np.ndarray  # int64 [H, W] at the source's size
    source_size: tuple[int, int]


@dataclass
class SampleSummary:
    written: int = 0
    already_done: int = 0
    empty_labels: list[str] = field(default_factory=list)
    sources: int = 0
    seconds: float = 0.0
    kernel_path: str = ""
    out: str = ""

    def line(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        empty = f", {len(self.empty_labels)} empty label(s) skipped" if self.empty_labels else ""
        done = f", {self.already_done} already there" if self.already_done else ""
        return (f"{self.written} pair(s) written from {self.sources} source(s) in {self.seconds:.1f} s "
                f"({rate:.2f} samples/s){done}{empty} -> {self.out}")


def _check_options(opts: SampleOptions) -> None:
    if opts.n < 1:
        raise AugPaintError(f"--n must be >= 1, got {opts.n}")
    if opts.batch_size < 1:
        raise AugPaintError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if not 0 <= opts.seed <= 0xFFFFFFFF:
        raise AugPaintError(f"--seed must be an unsigned 32-bit integer, got {opts.seed}")
    if opts.output_size not in ("model", "source"):
        raise AugPaintError(f"--output-size must be 'model' or 'source', got {opts.output_size!r}")
    if opts.mask_mode not in masks.MASK_MODES:
        raise AugPaintError(f"unknown --mask {opts.mask_mode!r}; choose one of {', '.join(masks.MASK_MODES)}")
    if opts.flip not in masks.FLIP_MODES:
        raise AugPaintError(f"unknown --flip {opts.flip!r}; choose one of {', '.join(masks.FLIP_MODES)}")


def load_sources(dataset: Dataset, size: int, progress: bool) -> list[Source]:
    """Read and check every labelled item, resized to the model's size; raises before anything is written."""
    sources = []
    for item in progress_bar(dataset.labelled, enabled=progress, desc="read"):
        sample = dataset.load(item)
        image, label = resize_pair(sample.image, sample.label, size)
        sources.append(Source(item.id, item.image_path, item.label_path, image, label, sample.label,
                              sample.source_size))
    return sources


def _pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a batch to ``size`` rows by repeating its last row.

    Every engine call then has the run's one batch shape, and on CPU a row's result is bit-identical whatever
    its position and the other rows' content (measured), so a sample's bytes depend on the batch size alone:
    not on the order of the sources, nor on which pairs an interrupted run had already written.
    """
    missing = size - x.shape[0]
    return x if missing <= 0 else torch.cat([x, x[-1:].expand(missing, *x.shape[1:])])


def feathered(mask: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Paste-back weight in [0, 1]: 0 outside the known region, rising smoothly to 1 a few pixels inside it.

    ``2 * blur(mask) - 1`` is 0 on the region's edge and 1 once the blur no longer reaches outside, so the
    feather lies wholly inside the known region and generated pixels are never overwritten.
    """
    return np.clip(2.0 * ndimage.gaussian_filter(mask.astype(np.float32), sigma) - 1.0, 0.0, 1.0)


class Job:
    """One sampling run over a dataset; ``run()`` does it and returns the summary."""

    def __init__(self, data: Path, weights: Path, out: Path, opts: SampleOptions, progress: bool = True):
        _check_options(opts)
        self.opts, self.progress = opts, progress
        self.weights = Path(weights)
        self.autoencoder, ae_cfg, self.unet, unet_cfg = load_weights_folder(self.weights)
        self.factor = ae_cfg.downsample_factor
        self.size = unet_cfg.latent_size * self.factor
        self.engine = create_engine(opts.engine, self.autoencoder, self.unet, **opts.engine_options)
        self.device = self.engine.device
        self.shift = torch.tensor(unet_cfg.latent_shift, dtype=torch.float32, device=self.device)[None, :, None, None]
        self.scale = torch.tensor(unet_cfg.latent_scale, dtype=torch.float32, device=self.device)[None, :, None, None]
        self.schedule = ddim_schedule(opts.steps, opts.eta)
        self.dataset = Dataset.open(data, nifti=opts.nifti, max_classes=opts.max_classes)
        self.sources = load_sources(self.dataset, self.size, progress)
        self.sha = weights_sha256(self.weights)
        self.run_config = {"seed": opts.seed, "weights_sha256": self.sha, "steps": opts.steps, "eta": opts.eta,
                           "mask_mode": opts.mask_mode, "margin": opts.margin, "flip": opts.flip,
                           "output_size": opts.output_size, "paste_back": opts.paste_back}
        self.writer = OutputWriter(Path(out), self.run_config)
        self.out = Path(out)
        self._z0: dict[tuple[str, tuple[bool, bool]], torch.Tensor] = {}  # on the device
        self._mask: dict[tuple[str, tuple[bool, bool]], torch.Tensor] = {}  # latent-size known masks, on the device

    # -- the per-sample view of a source ---------------------------------------------------------------
    def _flipped(self, src: Source, flip: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, label, image-size known mask) of a source under a flip."""
        image, label = masks.apply_flip(src.image, flip), masks.apply_flip(src.label, flip)
        return image, label, masks.known_mask(label, self.opts.mask_mode, self.opts.margin)

    def _clean_latents(self, keys: list[tuple[str, tuple[bool, bool]]], images: list[np.ndarray]) -> torch.Tensor:
        """Normalised clean latents z0 = (E(x) - shift) / scale, [len(keys), C, h, w] on the device.

        Each (source, flip) is uploaded and encoded once, in batches, and kept for the source's other samples.
        """
        todo = {key: image for key, image in zip(keys, images) if key not in self._z0}
        pending = list(todo.items())
        for i in range(0, len(pending), self.opts.batch_size):
            chunk = pending[i:i + self.opts.batch_size]
            x = torch.from_numpy(np.stack([image for _, image in chunk])).to(self.device)  # the one upload
            h = self.engine.encode(_pad(x, self.opts.batch_size))
            if not bool(torch.isfinite(h[: len(chunk)]).all()):
                raise AugPaintError(f"the encoder produced NaN/Inf latents for {', '.join(k[0] for k, _ in chunk)} "
                                    f"(weights {self.weights}); the autoencoder checkpoint is broken")
            for (key, _), z in zip(chunk, (h - self.shift) / self.scale):
                self._z0[key] = z
        return torch.stack([self._z0[key] for key in keys])

    def _known_masks(self, keys: list[tuple[str, tuple[bool, bool]]], image_masks: list[np.ndarray]) -> torch.Tensor:
        """Latent-size known masks [len(keys), 1, h, w] on the device, max-pooled once per (source, flip)."""
        for key, m in zip(keys, image_masks):
            if key not in self._mask:
                self._mask[key] = masks.to_latent(torch.from_numpy(m)[None, None].to(self.device), self.factor)[0]
        return torch.stack([self._mask[key] for key in keys])

    def _decode(self, z: torch.Tensor) -> np.ndarray:
        """Decoded images [B, 3, H, W] in [-1, 1], brought to the host: the batch's one download."""
        return self.engine.decode(z * self.scale + self.shift).clamp(-1, 1).cpu().numpy()

    def run(self) -> SampleSummary:
        opts = self.opts
        summary = SampleSummary(sources=len(self.sources), kernel_path=fused.kernel_path(self.device),
                                out=str(self.out))
        t0 = time.perf_counter()
        work = []  # (source, k, uid, flip, name)
        for src in self.sources:
            if not (src.label > 0).any():
                summary.empty_labels.append(src.id)
                continue
            for k in range(opts.n):
                name = f"{src.id}_{k}"
                if self.writer.done(name):
                    summary.already_done += 1
                    continue
                uid = rng.sample_uid(src.id, k)
                work.append((src, k, uid, masks.flip_for(opts.flip, opts.seed, uid), name))

        bar = progress_bar(enabled=self.progress and bool(work), total=len(work) * opts.steps, desc="sample", unit="step")
        try:
            for start in range(0, len(work), opts.batch_size):
                batch = work[start:start + opts.batch_size]
                views = [self._flipped(src, flip) for src, _, _, flip, _ in batch]
                keys = [(src.id, flip) for src, _, _, flip, _ in batch]
                z0 = self._clean_latents(keys, [v[0] for v in views])
                mask = self._known_masks(keys, [v[2] for v in views])
                uids = torch.tensor([uid for _, _, uid, _, _ in batch], dtype=torch.int64, device=self.device)
                z0, mask, uids = (_pad(x, opts.batch_size) for x in (z0, mask, uids))
                z, summary.kernel_path = sample(self.engine, z0, mask, uids, opts.seed, self.schedule,
                                                callback=lambda j: bar.update(len(batch)))
                if not bool(torch.isfinite(z).all()):
                    raise AugPaintError(f"sampling produced NaN/Inf latents for {', '.join(n for *_, n in batch)} "
                                        f"(weights {self.weights}); the U-Net checkpoint is broken")
                images = self._decode(z)[: len(batch)]
                for (src, k, uid, flip, name), (image_in, label, mask_img), image in zip(batch, views, images):
                    if opts.paste_back:
                        w = feathered(mask_img)[None]
                        image = w * image_in + (1.0 - w) * image
                    if opts.output_size == "source":
                        image = resize_image(image, src.source_size)
                        label = masks.apply_flip(src.source_label, flip)
                    record = {"source": src.id, "source_image": str(src.image_path.resolve()),
                              "source_label": str(src.label_path.resolve()),
                              "k": k, "uid": uid,
                              "flipped": [bool(flip[0]), bool(flip[1])], "weights": str(self.weights.resolve()),
                              "engine": opts.engine, "engine_options": opts.engine_options,
                              "batch_size": opts.batch_size, "kernel": summary.kernel_path,
                              **self.run_config}
                    self.writer.write_pair(name, image.astype(np.float32), label, record)
                    summary.written += 1
        finally:
            bar.close()  # before any error line, so that line is the last one
        summary.seconds = time.perf_counter() - t0
        self._preview()
        return summary

    def _preview(self) -> None:
        """preview.png from what is on disk, so it also shows the pairs of earlier (resumed) runs."""
        by_source: dict[str, list[np.ndarray]] = {}
        for rec in self.writer.records():
            by_source.setdefault(rec["source"], []).append(self.out / rec["image"])
        rows, known = [], []
        for src in self.sources:
            if src.id in by_source and len(rows) < PREVIEW_ROWS:
                samples = [resize_image(read_image(p), self.size) for p in by_source[src.id]]
                rows.append((src.image, src.label, samples))
                known.append(masks.known_mask(src.label, self.opts.mask_mode, self.opts.margin))
        if rows:
            make_preview(rows, self.out / "preview.png", known=known)


def run_sampling(data: Path, weights: Path, out: Path, opts: SampleOptions, progress: bool = True) -> SampleSummary:
    """Sample ``opts.n`` AugPaint pairs per labelled image of ``data`` into ``out``."""
    return Job(data, weights, out, opts, progress).run()

