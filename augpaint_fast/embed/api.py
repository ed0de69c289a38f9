"""Embedding AugPaint in a program: load the models once, then augment images from any number of threads.

    from augpaint_fast import from_pretrained

    aug = from_pretrained("weights/", engine="torch", steps=50, batch_size=8)   # None: the shipped tiny weights
    pairs = aug.augment(image, label, n=4, seed=0)      # image: array / tensor / path; label: class map
    pairs[0].image, pairs[0].label                      # float32 [3, S, S] in [-1, 1], int64 [S, S] (numpy)
    pairs[0].tensors(), pairs[0].png()                  # as torch tensors; as PNG bytes
    many = aug.augment_batch([(img1, lab1), ("case-7", img2, lab2)], n=4, seed=0)

Inputs follow the files' rules (``data.imageio``): an image is ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` of any
numeric dtype (uint8 / uint16 scaled by their range, floats kept when inside [-1, 1]); a label is an integer
class map ``[H, W]`` (0 = background) of the same size with some foreground. Both are resized to the model's
size ``S`` as the sampling job does; pairs come back at that size.

**Reproducibility.** Sample ``k`` of a source has uid ``rng.sample_uid(source_id, k)``, and its noise is a
pure function of (seed, uid), exactly as in ``augpaint-fast sample``: with the same source id, weights,
settings and ``batch_size``, ``pair.png()`` is byte for byte the job's ``images/<id>_<k>.png``. Give the id
(``source_id=``; the job's id is the file stem) or let it be derived from the content: ``mem-`` followed by 16
hex digits of blake2b-64 over the normalised image (float32 ``[3, H, W]``) and label (int64 ``[H, W]``), each
hashed with its dtype and shape (``generate.array_digest``). The same pixels therefore give the same id and
the same samples whether they arrive as a PNG upload, a uint8 array or a file path.

**Concurrency.** Calls from any thread are queued in a :class:`~augpaint_fast.embed.batcher.DynamicBatcher` and
packed into engine batches of ``batch_size`` (requests with the same seed share batches; every batch is
padded to ``batch_size``, so packing never changes a byte). One worker thread drives the engine; with
``workers=N`` (``serve --workers N``), N engine processes of one thread each (``job.workers.EngineProcess``)
run N batches at once, each batch on whichever engine is idle, with the same bytes. A full queue
refuses a request at once with :class:`~augpaint_fast.embed.batcher.QueueFull`; ``submit`` returns a future whose
``cancel()`` withdraws the request's waiting samples.
"""
from __future__ import annotations

from concurrent.futures import Future, TimeoutError as FutureTimeout
from queue import SimpleQueue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .batcher import DynamicBatcher
from ..models.checkpoint import weights_sha256
from ..assets import SHIPPED_WEIGHTS
from ..data import read_image, read_label, resize_pair
from ..data.imageio import encode_image_png, encode_label_png, image_from_array, label_from_array
from ..errors import AugPaintError
from ..job.generate import Generator, Pair, SampleOptions, Source, array_digest, check_options, work_item
from ..job.workers import EngineProcess, check_workers, start_engines


@dataclass(frozen=True)
class AugmentedPair:
    """A generated pair: ``image`` float32 [3, S, S] in [-1, 1], ``label`` int64 [S, S] (numpy), and what
    fixes it (source id, k, uid, seed, the flip applied)."""

    image: np.ndarray
    label: np.ndarray
    source_id: str
    k: int
    uid: int
    seed: int
    flipped: tuple[bool, bool]

    @property
    def name(self) -> str:
        """The job's file stem for this pair, ``<source_id>_<k>``."""
        return f"{self.source_id}_{self.k}"

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(image float32 [3, S, S], label int64 [S, S]) as torch tensors (sharing the arrays' memory)."""
        return torch.from_numpy(self.image), torch.from_numpy(self.label)

    def png(self) -> tuple[bytes, bytes]:
        """(image PNG, label PNG): the bytes the sampling job writes for this pair."""
        return encode_image_png(self.image), encode_label_png(self.label, self.name)


def _pair(p: Pair, seed: int) -> AugmentedPair:
    return AugmentedPair(p.image, p.label, p.item.source.id, p.item.k, p.item.uid, seed, p.item.flip)


def _array(x: Any, what: str) -> np.ndarray | None:
    """A numpy view of an array-like (torch tensors detached to the host); None for paths."""
    if isinstance(x, (str, Path)):
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise AugPaintError(f"{what} must be an array, a tensor or a file path, not {type(x).__name__}") from exc


class AugPaint:
    """Loaded models behind a dynamic batcher; see the module docstring. Use :func:`from_pretrained`."""

    def __init__(self, generator: Generator | Sequence[EngineProcess], *, max_wait_s: float = 0.01,
                 max_queue: int = 256, max_classes: int = 16):
        """``generator``: one generator driven by one thread, or engine processes of the same weights and
        options, one batch each at a time (they are closed with this object)."""
        self.engines = [generator] if isinstance(generator, Generator) else list(generator)
        self.generator = self.engines[0]  # the settings, size and weights of them all
        self._idle: SimpleQueue = SimpleQueue()  # engines without a batch: each batcher thread takes one
        for engine in self.engines:
            self._idle.put(engine)
        self.weights_sha256 = weights_sha256(self.generator.weights, self.generator.opts.variant)
        self.max_classes = max_classes
        self.batcher = DynamicBatcher(self._run_batch, self.generator.opts.batch_size, max_wait_s=max_wait_s,
                                      max_queue=max_queue, workers=len(self.engines))

    @property
    def image_size(self) -> int:
        return self.generator.size

    @property
    def batch_size(self) -> int:
        return self.generator.opts.batch_size

    @property
    def settings(self) -> dict:
        """The settings that, with the seed, source id and k, fix every pair (as in a job's run_config)."""
        o = self.generator.opts
        return {"weights_sha256": self.weights_sha256, **o.settings.as_dict(), "batch_size": o.batch_size,
                "engine": o.engine,
                "engine_options": {k: (str(v) if isinstance(v, Path) else v) for k, v in o.engine_options.items()}}

    def _run_batch(self, seed: int, items: list) -> list[AugmentedPair]:
        engine = self._idle.get()  # never waits: there are as many batcher threads as engines
        try:
            return [_pair(p, seed) for p in engine.generate(items, seed)]
        finally:
            self._idle.put(engine)

    # ------------------------------------------------------------------ inputs
    def source(self, image: Any, label: Any, source_id: str | None = None) -> Source:
        """Check and prepare one source (image + label) at the model's size; see the module docstring."""
        arr = _array(image, "image")
        img = read_image(image) if arr is None else image_from_array(arr, "image")
        arr = _array(label, "label")
        lab = read_label(label, self.max_classes) if arr is None else label_from_array(arr, self.max_classes)
        return self.source_from_arrays(img, lab, source_id)

    def source_from_arrays(self, image: np.ndarray, label: np.ndarray, source_id: str | None = None) -> Source:
        """``source`` for inputs already converted: image float32 [3, H, W] in [-1, 1] (``image_from_array``,
        ``decode_image``) and label int64 [H, W] (``label_from_array``, ``decode_label``)."""
        if image.shape[1:] != label.shape:
            raise AugPaintError(f"the image is {image.shape[1]}x{image.shape[2]} but its label is "
                                f"{label.shape[0]}x{label.shape[1]}; they must be the same size")
        if not (label > 0).any():
            raise AugPaintError("the label has no foreground (all 0): there is no labelled region to keep")
        if source_id is None:
            source_id = "mem-" + array_digest(image, label)
        elif not source_id or "/" in source_id or "\\" in source_id or source_id.startswith("."):
            raise AugPaintError(f"source_id {source_id!r} is not usable as a file stem")
        small_image, small_label = resize_pair(image, label, self.image_size)
        return Source(source_id, None, None, small_image, small_label, label, (label.shape[0], label.shape[1]))

    # ------------------------------------------------------------------ requests
    def submit(self, image: Any, label: Any, n: int = 4, seed: int = 0, *, source_id: str | None = None,
               start: int = 0) -> Future:
        """Queue samples ``start .. start + n - 1`` of one source; the future resolves to their pairs.

        Raises QueueFull at once when the queue cannot take them; ``future.cancel()`` withdraws the request.
        """
        return self.submit_source(self.source(image, label, source_id), n, seed, start=start)

    def submit_source(self, source: Source, n: int = 4, seed: int = 0, *, start: int = 0) -> Future:
        """``submit`` for a source already prepared (``source``, ``source_from_arrays``)."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise AugPaintError(f"n must be an integer >= 1, got {n!r}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise AugPaintError(f"start must be an integer >= 0, got {start!r}")
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 0xFFFFFFFF:
            raise AugPaintError(f"seed must be an unsigned 32-bit integer, got {seed!r}")
        items = [work_item(source, k, int(seed), self.generator.opts.flip) for k in range(start, start + n)]
        return self.batcher.submit(int(seed), items)

    def augment(self, image: Any, label: Any, n: int = 4, seed: int = 0, *, source_id: str | None = None,
                start: int = 0, timeout: float | None = None) -> list[AugmentedPair]:
        """``n`` pairs of one source (blocking); on timeout the request is cancelled and TimeoutError raised."""
        return _wait(self.submit(image, label, n, seed, source_id=source_id, start=start), timeout)

    def augment_batch(self, sources: Iterable[Sequence], n: int = 4, seed: int = 0, *,
                      timeout: float | None = None) -> list[list[AugmentedPair]]:
        """``n`` pairs for each of many sources, each ``(image, label)`` or ``(source_id, image, label)``.

        All sources are queued before waiting, so they share engine batches; if one is refused, those
        already queued are cancelled before the error is raised.
        """
        futures: list[Future] = []
        try:
            for entry in sources:
                if len(entry) == 3:
                    sid, image, label = entry
                elif len(entry) == 2:
                    (image, label), sid = entry, None
                else:
                    raise AugPaintError("each source is (image, label) or (source_id, image, label)")
                futures.append(self.submit(image, label, n, seed, source_id=sid))
            return [_wait(f, timeout) for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def stats(self) -> dict:
        """The batcher's counters (queue depth, batch fill, samples/s, requests) and the settings."""
        return {**self.batcher.stats(), "settings": self.settings}

    def close(self, cancel_pending: bool = False) -> None:
        """Stop taking requests; finish (or cancel) the queued ones, stop the worker threads and engine processes."""
        self.batcher.close(cancel_pending=cancel_pending)
        for engine in self.engines:
            if isinstance(engine, EngineProcess):
                engine.close()

    def __enter__(self) -> "AugPaint":
        return self

    def __exit__(self, *exc) -> None:
        self.close(cancel_pending=True)


def _wait(future: Future, timeout: float | None) -> list[AugmentedPair]:
    try:
        return future.result(timeout)
    except FutureTimeout:
        future.cancel()
        raise TimeoutError(f"no result within {timeout} s; the request was cancelled") from None


def from_pretrained(weights_dir: str | Path | None = None, engine: str = "torch", *, steps: int = 50,
                    eta: float = 1.0, mask_mode: str = "box", margin: int = 0, flip: str = "none",
                    batch_size: int = 8, paste_back: bool = False, max_classes: int = 16,
                    max_wait_ms: float = 10.0, max_queue: int = 256, workers: int = 1, **engine_options) -> AugPaint:
    """Load a weights folder (None: the shipped tiny weights) onto an engine, once.

    ``steps``, ``eta``, ``mask_mode``, ``margin``, ``flip``, ``paste_back`` mean what the ``sample`` flags do;
    ``batch_size`` is the engine batch every request is packed into; ``max_wait_ms`` how long a batch waits
    to fill; ``max_queue`` how many samples may wait; ``engine_options`` go to the engine (``device``,
    ``dtype``, ``cuda_graphs``, ...). Pairs come back at the model's size. ``workers`` > 1 loads the models in
    that many engine processes of one thread each (``job.workers``), serving that many batches at once.
    """
    check_workers(workers)
    opts = SampleOptions(steps=steps, eta=eta, mask_mode=mask_mode, margin=margin, flip=flip,
                         batch_size=batch_size, engine=engine, paste_back=paste_back, max_classes=max_classes,
                         engine_options=dict(engine_options))
    check_options(opts)  # here, not in each worker
    weights = Path(weights_dir) if weights_dir is not None else SHIPPED_WEIGHTS
    generator = Generator(weights, opts) if workers == 1 else start_engines(weights, opts, workers)
    return AugPaint(generator, max_wait_s=max_wait_ms / 1000.0, max_queue=max_queue, max_classes=max_classes)
