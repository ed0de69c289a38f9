"""The sampling job: a dataset of labelled images in, AugPaint image/label pairs out.

For each labelled source: resize to the model's size, build its known mask (``masks``), encode it once; then
sample batches of (source, k) through the engine (``engines.sample``), decode in batches and write
``OUT/images/<source>_<k>.png``, ``OUT/labels/<source>_<k>.png``, one line per pair in ``OUT/manifest.jsonl``
and ``OUT/preview.png``. Every input is read and checked before anything is written; pairs are written
atomically and recorded as they finish, so an interrupted run loses nothing and a rerun skips what is done.

One code path generates a batch: :class:`Generator` (the models on an engine, with one run's settings) turns
up to ``batch_size`` work items (source, k, uid, flip) into pairs. The job below writes what it returns; the
embedding API (``augpaint_fast.embed.api``, through its dynamic batcher), the PyTorch dataset
(``augpaint_fast.embed.aug_dataset``) and the Ray workers (``augpaint_fast.embed.ray_workers``) call the same
method, so a pair's bytes depend on (seed, source id, k) and the batch size only, whoever asks for it.

Device placement has one owner, the generator: it runs on ``engine.device`` end to end. Each (source, flip)
image is uploaded once and encoded there, its clean latent and latent-size known mask stay there for its other
samples, and uids, shift and scale are created there; results come back to the host once per batch, after
decoding. Nothing below it moves tensors between devices (the engines and kernels refuse inputs on another
device).
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..ops import fused
from ..core import conditional, masks, rng
from ..models.checkpoint import load_weights_folder, weights_sha256
from ..data import Dataset, NiftiOptions, OutputWriter, resize_image, resize_pair
from ..engines import create_engine, sample
from ..checks import in_range, input_folder, output_folder
from ..errors import AugPaintError
from .preview import make_preview
from .settings import SampleSettings
from ..progress import progress as progress_bar
from ..data.imageio import read_image
from ..core.schedule import ddim_schedule

PREVIEW_ROWS = 6


@dataclass(frozen=True)
class SampleOptions:
    """Settings of one sampling run (the CLI's ``sample`` flags); ``settings`` is the part that fixes a sample."""

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
    variant: str = "uncond"  # "cond": the conditional U-Net of paper §3.1 (weights/unet-cond)
    max_classes: int = 16
    nifti: NiftiOptions | None = None
    engine_options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, settings: SampleSettings, **run) -> "SampleOptions":
        """The options of a run with ``settings`` (its dtype and cache_interval as engine options) and the
        per-run fields ``run`` (n, seed, batch_size, engine, ...; not ``engine_options``)."""
        fields = {k: v for k, v in settings.as_dict().items() if k not in ("dtype", "cache_interval")}
        return cls(**fields, **run, engine_options=settings.engine_options())

    @property
    def settings(self) -> SampleSettings:
        """The record of the settings that fix this run's samples."""
        return SampleSettings.of(self)


def array_digest(*arrays: np.ndarray, nbytes: int = 8) -> str:
    """Hex blake2b (``nbytes`` bytes) over each array's dtype, shape and C-order bytes: equal iff the arrays are."""
    digest = hashlib.blake2b(digest_size=nbytes)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    return digest.hexdigest()


@dataclass
class Source:
    """One labelled source at the model's size, with what its samples need."""

    id: str
    image_path: Path | None  # None for in-memory sources (the API)
    label_path: Path | None
    image: np.ndarray  # float32 [3, S, S] in [-1, 1]
    label: np.ndarray  # int64 [S, S]
    source_label: np.ndarray  # int64 [H, W] at the source's size
    source_size: tuple[int, int]
    digest: str = ""  # of image and label: the key of its cached latents (set when empty)
    slice: dict | None = None  # a slice of a NIfTI volume: {"index", "axis", "channel", "window"} (manifest)

    def __post_init__(self):
        if not self.digest:
            self.digest = array_digest(self.image, self.label)


@dataclass(frozen=True)
class WorkItem:
    """Sample ``k`` of a source: its uid (``rng.sample_uid``) and flip (``masks.flip_for``) fix its noise."""

    source: Source
    k: int
    uid: int
    flip: tuple[bool, bool]

    @property
    def name(self) -> str:
        return f"{self.source.id}_{self.k}"


def work_item(source: Source, k: int, seed: int, flip_mode: str) -> WorkItem:
    uid = rng.sample_uid(source.id, k)
    return WorkItem(source, k, uid, masks.flip_for(flip_mode, seed, uid))


@dataclass
class Pair:
    """A generated pair: image float32 [3, H, W] in [-1, 1] and label int64 [H, W], at the output size."""

    item: WorkItem
    image: np.ndarray
    label: np.ndarray
    kernel: str  # the fused-step path that ran


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


def check_options(opts: SampleOptions) -> None:
    """Every setting of a run, before anything is loaded or written."""
    if opts.n < 1:
        raise AugPaintError(f"n must be >= 1, got {opts.n}", param="n")
    if opts.batch_size < 1:
        raise AugPaintError(f"batch_size must be >= 1, got {opts.batch_size}", param="batch_size")
    if not 0 <= opts.seed <= 0xFFFFFFFF:
        raise AugPaintError(f"seed must be an unsigned 32-bit integer, got {opts.seed}", param="seed")
    in_range("margin", opts.margin, 0)
    ddim_schedule(opts.steps, opts.eta)  # checks steps and eta
    if opts.output_size not in ("model", "source"):
        raise AugPaintError(f"output_size must be 'model' or 'source', got {opts.output_size!r}", param="output_size")
    if opts.mask_mode not in masks.MASK_MODES:
        raise AugPaintError(f"unknown mask_mode {opts.mask_mode!r}; choose one of {', '.join(masks.MASK_MODES)}",
                            param="mask_mode")
    if opts.flip not in masks.FLIP_MODES:
        raise AugPaintError(f"unknown flip {opts.flip!r}; choose one of {', '.join(masks.FLIP_MODES)}", param="flip")
    if opts.variant not in ("uncond", "cond"):
        raise AugPaintError(f"variant must be uncond or cond, got {opts.variant!r}", param="variant")


def _slice_record(dataset: Dataset, item) -> dict | None:
    """Where a volume slice came from, for restacking its samples (``export-dataset --file-ending .nii.gz``)."""
    if item.slice_index is None:
        return None
    n = dataset.nifti
    return {"index": item.slice_index, "axis": n.axis, "channel": n.channel,
            "window": None if n.window is None else list(n.window)}


def load_sources(dataset: Dataset, size: int, progress: bool) -> list[Source]:
    """Read and check every labelled item, resized to the model's size; raises before anything is written."""
    sources = []
    for item in progress_bar(dataset.labelled, enabled=progress, desc="read"):
        sample = dataset.load(item)
        image, label = resize_pair(sample.image, sample.label, size)
        sources.append(Source(item.id, item.image_path, item.label_path, image, label, sample.label,
                              sample.source_size, slice=_slice_record(dataset, item)))
    return sources


def model_image_size(weights: Path, variant: str = "uncond") -> int:
    """The image size of a weights folder, after loading and checking it whole (nothing is kept)."""
    _, ae_cfg, _, unet_cfg = load_weights_folder(Path(weights), variant)
    return unet_cfg.latent_size * ae_cfg.downsample_factor


def data_fingerprint(sources: Sequence[Source]) -> dict:
    """What a run's samples take from its dataset: the number of sources and a blake2b digest over each one's
    id, its image and label at the model's size (``Source.digest``) and its label at the source's size.

    The decoded arrays are hashed, not the files: they are already in memory (no second read), and they are
    what the samples depend on, so the NIfTI slicing and CT-window options are covered too, while re-encoding
    a file without changing its pixels is not a change.
    """
    digest = hashlib.blake2b(digest_size=16)
    for src in sources:
        digest.update(f"{src.id}\0{src.digest}\0{array_digest(src.source_label)}\0".encode())
    return {"sources": len(sources), "digest": digest.hexdigest()}


def run_config(opts: SampleOptions, weights_sha: str, data: dict | None = None) -> dict:
    """The settings that determine a run's samples (``OutputWriter`` compares them on resume); ``data`` is the
    dataset's ``data_fingerprint`` (the embedding API has no dataset). See ``SampleSettings.run_config``."""
    return opts.settings.run_config(opts.seed, weights_sha, data)


def manifest_record(item: WorkItem, kernel: str, weights: Path, opts: SampleOptions, config: dict) -> dict:
    """The manifest line of a pair (besides name, image and label, which the writer adds)."""
    src = item.source
    return {"source": src.id, "source_image": str(Path(src.image_path).resolve()),
            "source_label": str(Path(src.label_path).resolve()),
            "k": item.k, "uid": item.uid,
            "flipped": [bool(item.flip[0]), bool(item.flip[1])], "weights": str(Path(weights).resolve()),
            "engine": opts.engine, "engine_options": opts.engine_options,
            "batch_size": opts.batch_size, "kernel": kernel, **({"slice": src.slice} if src.slice else {}),
            **config}


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


class Generator:
    """The models of a weights folder on one engine with one run's settings: ``generate(items, seed)`` turns up
    to ``opts.batch_size`` work items into pairs (``opts.n`` and ``opts.seed`` are not used here).

    Every engine call has ``opts.batch_size`` rows (``_pad``), so a pair's bytes depend on (seed, source id, k)
    and the batch size only: not on the other items of its batch, nor on who asked for it. Latents and masks
    of the last ``CACHE`` (source, flip) views stay on the device, keyed by content (``Source.digest``).
    Not thread-safe: one thread drives a generator (the API's batcher serialises callers).
    """

    CACHE = 1024

    def __init__(self, weights: Path, opts: SampleOptions):
        check_options(opts)
        self.opts = opts
        self.weights = Path(weights)
        self.autoencoder, ae_cfg, self.unet, unet_cfg = load_weights_folder(self.weights, opts.variant)
        self.factor = ae_cfg.downsample_factor
        self.size = unet_cfg.latent_size * self.factor
        self.engine = create_engine(opts.engine, self.autoencoder, self.unet, **opts.engine_options)
        self.device = self.engine.device
        self.shift = torch.tensor(unet_cfg.latent_shift, dtype=torch.float32, device=self.device)[None, :, None, None]
        self.scale = torch.tensor(unet_cfg.latent_scale, dtype=torch.float32, device=self.device)[None, :, None, None]
        self.schedule = ddim_schedule(opts.steps, opts.eta)
        self._z0: OrderedDict[tuple[str, tuple[bool, bool]], torch.Tensor] = OrderedDict()  # on the device
        self._mask: OrderedDict[tuple[str, tuple[bool, bool]], torch.Tensor] = OrderedDict()  # latent-size, ditto
        self._cond: OrderedDict[tuple[str, tuple[bool, bool]], torch.Tensor] = OrderedDict()  # masked-image latents

    # -- the per-sample view of a source ---------------------------------------------------------------
    def _flipped(self, src: Source, flip: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, label, image-size known mask) of a source under a flip."""
        image, label = masks.apply_flip(src.image, flip), masks.apply_flip(src.label, flip)
        return image, label, masks.known_mask(label, self.opts.mask_mode, self.opts.margin)

    def _cached(self, cache: OrderedDict, keys: list) -> torch.Tensor:
        """Stack the cached entries of ``keys``, mark them recently used and drop the least recent beyond CACHE."""
        out = torch.stack([cache[key] for key in keys])
        for key in keys:
            cache.move_to_end(key)
        while len(cache) > max(self.CACHE, len(keys)):
            cache.popitem(last=False)
        return out

    def _clean_latents(self, items: Sequence[WorkItem], images: list[np.ndarray],
                       cache: OrderedDict | None = None) -> torch.Tensor:
        """Normalised latents (E(x) - shift) / scale of ``images``, [len(items), C, h, w] on the device.

        Each (source, flip) is uploaded and encoded once, in batches, and kept in ``cache`` (the clean latents
        z0 by default; the masked images' latents of the conditional variant otherwise) for its other samples.
        """
        cache = self._z0 if cache is None else cache
        keys = [(it.source.digest, it.flip) for it in items]
        todo = {key: (image, it.source.id) for key, image, it in zip(keys, images, items) if key not in cache}
        pending = list(todo.items())
        for i in range(0, len(pending), self.opts.batch_size):
            chunk = pending[i:i + self.opts.batch_size]
            x = torch.from_numpy(np.stack([image for _, (image, _) in chunk])).to(self.device)  # the one upload
            h = self.engine.encode(_pad(x, self.opts.batch_size))
            if not bool(torch.isfinite(h[: len(chunk)]).all()):
                raise AugPaintError(f"the encoder produced NaN/Inf latents for {', '.join(i for _, (_, i) in chunk)} "
                                    f"(weights {self.weights}); the autoencoder checkpoint is broken")
            for (key, _), z in zip(chunk, (h - self.shift) / self.scale):
                cache[key] = z.clone()  # its own storage: a cached row must not keep its whole batch alive
        return self._cached(cache, keys)

    def _cond_latents(self, items: Sequence[WorkItem], views: list[tuple[np.ndarray, ...]]) -> torch.Tensor:
        """The conditional U-Net's input: latents of the masked images, built as in training
        (``conditional.masked_images``) from each view's image and image-size known mask."""
        masked = [conditional.masked_images(torch.from_numpy(image), torch.from_numpy(known)[None]).numpy()
                  for image, _, known in views]
        return self._clean_latents(items, masked, self._cond)

    def _known_masks(self, items: Sequence[WorkItem], image_masks: list[np.ndarray]) -> torch.Tensor:
        """Latent-size known masks [len(items), 1, h, w] on the device, max-pooled once per (source, flip)."""
        keys = [(it.source.digest, it.flip) for it in items]
        for key, m in zip(keys, image_masks):
            if key not in self._mask:
                self._mask[key] = masks.to_latent(torch.from_numpy(m)[None, None].to(self.device), self.factor)[0]
        return self._cached(self._mask, keys)

    def _decode(self, z: torch.Tensor) -> np.ndarray:
        """Decoded images [B, 3, H, W] in [-1, 1], brought to the host: the batch's one download."""
        return self.engine.decode(z * self.scale + self.shift).clamp(-1, 1).cpu().numpy()

    def generate(self, items: Sequence[WorkItem], seed: int,
                 callback: Callable[[int], None] | None = None) -> list[Pair]:
        """The pairs of 1 to ``batch_size`` work items, in order (``callback(j)`` after U-Net call j)."""
        opts = self.opts
        if not 0 < len(items) <= opts.batch_size:
            raise ValueError(f"generate takes 1 to {opts.batch_size} items, got {len(items)}")
        views = [self._flipped(it.source, it.flip) for it in items]
        z0 = self._clean_latents(items, [v[0] for v in views])
        mask = self._known_masks(items, [v[2] for v in views])
        uids = torch.tensor([it.uid for it in items], dtype=torch.int64, device=self.device)
        z0, mask, uids = (_pad(x, opts.batch_size) for x in (z0, mask, uids))
        cond = None
        if opts.variant == "cond":  # paper §3.1: condition on the masked image's latent, re-impose nothing
            cond = _pad(self._cond_latents(items, views), opts.batch_size)
            mask = torch.zeros_like(mask)
        z, kernel = sample(self.engine, z0, mask, uids, seed, self.schedule, cond=cond, callback=callback)
        if not bool(torch.isfinite(z).all()):
            raise AugPaintError(f"sampling produced NaN/Inf latents for {', '.join(it.name for it in items)} "
                                f"(weights {self.weights}); the U-Net checkpoint is broken")
        images = self._decode(z)[: len(items)]
        pairs = []
        for it, (image_in, label, mask_img), image in zip(items, views, images):
            if opts.paste_back:
                w = feathered(mask_img)[None]
                image = w * image_in + (1.0 - w) * image
            if opts.output_size == "source":
                image = resize_image(image, it.source.source_size)
                label = masks.apply_flip(it.source.source_label, it.flip)
            pairs.append(Pair(it, image.astype(np.float32), label, kernel))
        return pairs


class Job:
    """One sampling run over a dataset; ``run()`` does it and returns the summary.

    ``generator=False`` plans and writes without loading an engine here (the Ray driver: its workers generate);
    the weights are still loaded once and checked before anything is written. Every setting and input is
    checked before the output folder is touched; from then until ``run()`` returns (or ``close()``), the job
    holds the folder's exclusive lock, so a second run into it is refused.
    """

    def __init__(self, data: Path, weights: Path, out: Path, opts: SampleOptions, progress: bool = True, *,
                 generator: bool = True):
        check_options(opts)
        input_folder("--weights", weights)
        output_folder("--out", out)
        self.opts, self.progress = opts, progress
        self.weights = Path(weights)
        self.generator = Generator(self.weights, opts) if generator else None
        self.size = self.generator.size if generator else model_image_size(self.weights, opts.variant)
        self.dataset = Dataset.open(data, nifti=opts.nifti, max_classes=opts.max_classes)
        self.sources = load_sources(self.dataset, self.size, progress)
        if not any((src.label > 0).any() for src in self.sources):
            raise AugPaintError(f"every label of {data} is empty: there is no labelled region to keep, nothing "
                                "to sample")
        self.run_config = run_config(opts, weights_sha256(self.weights, opts.variant),
                                     data_fingerprint(self.sources))
        self.writer = OutputWriter(Path(out), self.run_config, exclusive=True)
        self.out = Path(out)

    def plan(self, summary: SampleSummary) -> list[WorkItem]:
        """The pairs still to write, in order; counts empty labels and pairs already done in ``summary``."""
        work = []
        for src in self.sources:
            if not (src.label > 0).any():
                summary.empty_labels.append(src.id)
                continue
            for k in range(self.opts.n):
                if self.writer.done(f"{src.id}_{k}"):
                    summary.already_done += 1
                    continue
                work.append(work_item(src, k, self.opts.seed, self.opts.flip))
        return work

    def record(self, item: WorkItem, kernel: str) -> dict:
        return manifest_record(item, kernel, self.weights, self.opts, self.run_config)

    def close(self) -> None:
        """Release the output folder (``run()`` does it when it ends, however it ends)."""
        self.writer.close()

    def run(self) -> SampleSummary:
        with self.writer:
            return self._run()

    def _run(self) -> SampleSummary:
        opts = self.opts
        summary = SampleSummary(sources=len(self.sources), kernel_path=fused.kernel_path(self.generator.device),
                                out=str(self.out))
        t0 = time.perf_counter()
        work = self.plan(summary)
        bar = progress_bar(enabled=self.progress and bool(work), total=len(work) * opts.steps, desc="sample", unit="step")
        try:
            for start in range(0, len(work), opts.batch_size):
                batch = work[start:start + opts.batch_size]
                for pair in self.generator.generate(batch, opts.seed, callback=lambda j: bar.update(len(batch))):
                    self.writer.write_pair(pair.item.name, pair.image, pair.label, self.record(pair.item, pair.kernel))
                    summary.written += 1
                    summary.kernel_path = pair.kernel
        finally:
            bar.close()  # before any error line, so that line is the last one
        summary.seconds = time.perf_counter() - t0
        self.preview()
        return summary

    def preview(self) -> None:
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

