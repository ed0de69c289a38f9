"""``AugPaintDataset``: real and AugPaint-generated (image, label) pairs for a standard PyTorch trainer.

    from augpaint_fast import AugPaintDataset

    data = AugPaintDataset("DATA", weights="W", n_per_source=8)        # DATA: images/ + labels/ (any format)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, num_workers=2)
    for image, label in loader: ...         # float32 [B, 3, S, S] in [-1, 1], int64 [B, S, S]; S: the model's size

Items ``0 .. len(data.sources) - 1`` are the real labelled images (resized to the model's size, as the
sampling job reads them); the rest are ``n_per_source`` generated pairs per source with some foreground, in
source order (sample k of source s is ``data.items[i - data.num_real]``, named ``<s>_<k>``).

**Generated lazily, cached on disk.** A generated item is made on first access, through the same code path
as ``augpaint-fast sample`` (``generate.Generator``), and written to ``cache_dir`` in the job's output layout
(``images/``, ``labels/``, ``manifest.jsonl``, ``run_config.json``); it is then always read back from there,
so the first epoch and every later epoch or run see the same bytes, and later ones cost only PNG reads. A
miss generates the whole chunk of ``batch_size`` consecutive items it belongs to (one full engine batch).
The default ``cache_dir`` is ``$AUGPAINT_FAST_CACHE/datasets/<digest>`` (``~/.cache/augpaint_fast``), the digest
taken over the data folder and the settings that fix the samples; ``augpaint-fast sample --out`` into the same
folder with the same settings fills it ahead of time. The bytes equal the CLI's at the same ``batch_size``.

**Workers.** With ``DataLoader(num_workers>0)`` each worker process loads its own engine on its first miss.
Two workers never generate the same pair: a miss holds the cross-process locks of its chunk's pair names
(:class:`~augpaint_fast.locks.NameLocks`), re-reads the manifest, and generates only what is still missing;
the cache folder's writer is shared (``OutputWriter(shared=True)``: manifest appends under a folder lock).
A worker killed mid-chunk leaves at most temporary files, which the next miss on that chunk removes.
A process forked from the one that made the dataset (any ``fork`` start method, not only the DataLoader's) runs
torch at one thread, as DataLoader workers do: torch's oneDNN runs on GNU OpenMP, which hangs in a child forked
after the parent ran a parallel region. Samples are bit-identical at the same engine, batch size and torch
thread count; at another thread count oneDNN may sum in another order (a grey level here and there).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch

from ..models.checkpoint import weights_sha256
from ..assets import SHIPPED_WEIGHTS
from ..data import Dataset, NiftiOptions, OutputWriter, read_image, read_label
from ..job.generate import (Generator, SampleOptions, WorkItem, check_options, data_fingerprint, load_sources,
                       manifest_record, model_image_size, run_config, work_item)
from ..locks import NameLocks
from ..progress import progress as progress_bar

PAIR_LOCKS = ".pairs.lock"


def default_cache_dir(real_dir: Path, config: dict) -> Path:
    """``<package cache>/datasets/<digest of the data folder's path and the samples' settings>``."""
    from ..export.cache import default_cache_dir as package_cache

    key = json.dumps({"data_dir": str(Path(real_dir).resolve()), **config}, sort_keys=True)
    return package_cache() / "datasets" / hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class AugPaintDataset(torch.utils.data.Dataset):
    """Real and generated (image, label) tensors of a labelled dataset; see the module docstring.

    ``weights``: a weights folder (None: the shipped tiny weights). ``steps``, ``eta``, ``mask_mode``,
    ``margin``, ``flip``, ``seed``, ``batch_size``, ``engine`` and ``engine_options`` mean what the ``sample``
    flags do. ``include_real=False`` yields generated pairs only. ``transform(image, label) -> (image, label)``
    runs on every item after loading (tensors).
    """

    def __init__(self, real_dir: str | Path, weights: str | Path | None = None, n_per_source: int = 4, *,
                 cache_dir: str | Path | None = None, seed: int = 0, steps: int = 50, eta: float = 1.0,
                 mask_mode: str = "box", margin: int = 0, flip: str = "none", batch_size: int = 8,
                 engine: str = "torch", engine_options: dict | None = None, include_real: bool = True,
                 transform: Callable | None = None, nifti: NiftiOptions | None = None, max_classes: int = 16,
                 progress: bool = False):
        self.opts = SampleOptions(n=n_per_source, steps=steps, eta=eta, mask_mode=mask_mode, margin=margin,
                                  flip=flip, seed=seed, batch_size=batch_size, engine=engine,
                                  max_classes=max_classes, nifti=nifti, engine_options=dict(engine_options or {}))
        check_options(self.opts)
        self.weights = Path(weights) if weights is not None else SHIPPED_WEIGHTS
        self.size = model_image_size(self.weights, self.opts.variant)
        self.sources = load_sources(Dataset.open(real_dir, nifti=nifti, max_classes=max_classes), self.size,
                                    progress)
        self.config = run_config(self.opts, weights_sha256(self.weights, self.opts.variant),
                                 data_fingerprint(self.sources))  # the cache belongs to this data, as sample's out
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(real_dir, self.config)
        self.items: list[WorkItem] = [work_item(src, k, seed, flip) for src in self.sources
                                      if (src.label > 0).any() for k in range(n_per_source)]
        self.num_real = len(self.sources) if include_real else 0
        self.num_classes = int(max(int(src.label.max()) for src in self.sources)) + 1 if self.sources else 1
        self.transform, self.progress = transform, progress
        self._locks = NameLocks(self.cache_dir / PAIR_LOCKS)
        self._pid: int | None = None
        self._writer: OutputWriter | None = None
        self._generator: Generator | None = None
        self._done: set[str] = set()  # pairs this process knows are on disk
        self._own_state()  # creates the cache folder and checks its settings now, not in a worker

    # ------------------------------------------------------------------ per-process state
    def _own_state(self) -> OutputWriter:
        """This process's writer (and, lazily, generator): rebuilt in a worker process, never shared."""
        if self._pid != os.getpid():
            if self._pid is not None:  # forked (a spawned copy comes unpickled, with no pid): see "Workers"
                torch.set_num_threads(1)
            self._writer = OutputWriter(self.cache_dir, self.config, shared=True)
            self._generator, self._pid = None, os.getpid()
        return self._writer

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_pid=None, _writer=None, _generator=None)
        return state

    # ------------------------------------------------------------------ generation
    def _ensure(self, j: int) -> None:
        """Make sure generated item ``j`` is on disk, generating its chunk if nobody has."""
        name = self.items[j].name
        if name in self._done:
            return
        writer = self._own_state()
        if not writer.done(name):
            writer.refresh()
        if not writer.done(name):
            bs = self.opts.batch_size
            chunk = self.items[j - j % bs: j - j % bs + bs]
            with self._locks.hold(it.name for it in chunk):
                writer.refresh()  # another process may have made them while we waited
                todo = [it for it in chunk if not writer.done(it.name)]
                if todo:
                    writer.discard_partial(it.name for it in todo)
                    if self._generator is None:
                        self._generator = Generator(self.weights, self.opts)
                    for pair in self._generator.generate(todo, self.opts.seed):
                        record = manifest_record(pair.item, pair.kernel, self.weights, self.opts, self.config)
                        writer.write_pair(pair.item.name, pair.image, pair.label, record)
            self._done.update(it.name for it in chunk)
        self._done.add(name)

    def prepare(self) -> "AugPaintDataset":
        """Generate every missing pair now, in this process (a progress bar with ``progress=True``)."""
        bs = self.opts.batch_size
        for j in progress_bar(range(0, len(self.items), bs), enabled=self.progress, desc="generate", unit="batch"):
            self._ensure(j)
        return self

    # ------------------------------------------------------------------ Dataset
    def __len__(self) -> int:
        return self.num_real + len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if index < self.num_real:
            src = self.sources[index]
            image, label = torch.from_numpy(src.image.copy()), torch.from_numpy(src.label.copy())
        else:
            j = index - self.num_real
            self._ensure(j)
            name = self.items[j].name
            image = torch.from_numpy(read_image(self.cache_dir / "images" / f"{name}.png"))
            label = torch.from_numpy(read_label(self.cache_dir / "labels" / f"{name}.png", self.opts.max_classes))
        return self.transform(image, label) if self.transform is not None else (image, label)

    def __repr__(self) -> str:
        return (f"AugPaintDataset({len(self.sources)} sources, {self.num_real} real + {len(self.items)} generated "
                f"items at {self.size}x{self.size}, cache {self.cache_dir})")
