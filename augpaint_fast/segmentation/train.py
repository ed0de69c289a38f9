"""``augpaint-fast train-seg``: train the MONAI U-Net on real and generated pairs (paper §4.2).

Recipe (paper): ``DiceCELoss(to_onehot_y=True, softmax=True)`` (Dice + cross-entropy, background included),
Adam with lr 5e-4, global batch 4, 120 epochs by default; no validation split (evaluate on a held-out test
folder with ``augpaint-fast evaluate``). Online augmentation is off by default, as in the paper;
``--online-aug standard`` (flips along ``--online-flip`` axes, small affine, intensity scale/shift, Gaussian
noise: see :mod:`.augment`) is what a practitioner would use and the pipeline's default. It transforms every
pair the same way, real or generated, image and label together.

Data: every ``--data`` folder's pairs (real dataset folders and generated folders alike, see
:mod:`augpaint_fast.data.pairs`), resized to ``--size``; pairs whose label has no foreground train as
background-only examples and are counted (``empty_labels`` in config.json). ``--classes`` defaults to the
largest class id in the data; give it when a small labelled subset may lack the highest class.

Length: exactly one of ``--epochs`` (default 120) and ``--steps`` (optimizer steps) decides it;
``steps = ceil(epochs * N / B)`` for N pairs and global batch B. The run records both (``steps`` and the
effective ``epochs = steps * B / N``), and which one was given.

Batches: every global batch has exactly B pairs. The pairs are repeated ``r = B / gcd(N, B)`` times so one
"pass" of ``L = N * r`` positions is a whole number of batches; each pass is shuffled by
``torch.utils.data.DistributedSampler(seed=seed)`` with ``set_epoch(pass)``, and step ``s`` takes positions
``[j * B, (j + 1) * B)`` of pass ``s // (L / B)`` (``j = s mod (L / B)``). With N = 1 and B = 4 every batch is
the one pair four times (differently augmented when augmentation is on). Under torchrun each of the W
processes takes B / W of those positions (the sampler's interleaved shard), so the union of the local
batches is exactly the single-process batch; the loss is a mean of per-pair terms (cross-entropy over equal
pixel counts, Dice per pair and class), so DDP's averaged gradient is the single-process gradient up to
floating-point summation order. Augmentation of a pair is seeded by (seed, pass, position), so it does not
depend on the number of processes either.

Reproducibility: the seed fixes the initial weights (``torch.manual_seed``), the batch order and the
augmentation. Two CPU runs with the same settings and thread count give bit-identical weights (tested).

Resuming: ``RUN/train_state.pt`` (weights, optimizer, step, elapsed time) is written atomically every
``--checkpoint-every`` steps by rank 0; rerunning the same command resumes from it and ends with the same
weights as an uninterrupted run (tested). A changed setting (data, size, channels, lr, ...) is refused with
one line. A finished run (``config.json`` present) is not retrained: the same command prints its summary, a
different one is refused.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ..data.pairs import PairFolder, Pairs, load_pairs, open_pairs
from ..errors import AugPaintError
from ..progress import progress as progress_bar
from ..training.ddp import (DistContext, all_reduce_mean, barrier, init_distributed,
                                    split_batch, unwrap, wrap_ddp)
from ..training.shared import SEED_RANGE, STATE_FILE, load_state, save_state
from .augment import FLIPS, RECIPES, apply_joint, build_recipe, pair_seed
from .model import SegModelConfig, build_unet, read_run_config, save_run

DEFAULT_EPOCHS = 120


@dataclass
class SegTrainResult:
    run: Path
    steps: int
    epochs: float
    pairs: int
    classes: int
    final_loss: float
    seconds: float
    world_size: int
    already_done: bool = False

    def line(self) -> str:
        what = "already trained" if self.already_done else "trained"
        return (f"segmenter {what}: {self.steps} steps ({self.epochs:.1f} epochs) on {self.pairs} pairs, "
                f"{self.classes} classes, final loss {self.final_loss:.4f}, {self.seconds:.0f} s, "
                f"{self.world_size} process(es) -> {self.run}")


class _Repeated:
    """A length-only dataset for DistributedSampler: ``n`` pairs, each ``r`` times (position v -> pair v % n)."""

    def __init__(self, n: int, r: int):
        self.n, self.r = n, r

    def __len__(self) -> int:
        return self.n * self.r


class BatchStream:
    """This process's share of global batch ``s`` as ``[(pair index, augmentation seed), ...]`` (module docstring)."""

    def __init__(self, n: int, batch_size: int, seed: int, ctx: DistContext):
        self.n, self.seed, self.ctx = n, seed, ctx
        repeat = batch_size // math.gcd(n, batch_size)
        self.steps_per_pass = n * repeat // batch_size
        self.local = split_batch(batch_size, ctx)
        self.sampler = DistributedSampler(_Repeated(n, repeat), num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self._pass, self._shard = -1, []

    def batch(self, step: int) -> list[tuple[int, int]]:
        p, j = divmod(step, self.steps_per_pass)
        if p != self._pass:
            self.sampler.set_epoch(p)
            self._pass, self._shard = p, list(iter(self.sampler))
        out = []
        for i in range(self.local):
            q = j * self.local + i  # index in this process's shard
            position = q * self.ctx.world_size + self.ctx.rank  # index in the pass's permutation
            out.append((self._shard[q] % self.n, pair_seed(self.seed, p, position)))
        return out


def _fingerprint(folders: list[PairFolder]) -> str:
    """sha256 over every pair's folder, id and file sizes: a changed data set is a changed setting."""
    h = hashlib.sha256()
    for i, f in enumerate(folders):
        for it in f.items:
            sizes = [os.stat(p).st_size for p in (it.image_path, it.label_path)]
            h.update(f"{i}\0{it.id}\0{sizes[0]}\0{sizes[1]}\n".encode())
    return h.hexdigest()


def _check_writable(run: Path) -> None:
    if run.exists() and not run.is_dir():
        raise AugPaintError(f"--out {run} exists and is not a folder")
    try:
        run.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=run)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise AugPaintError(f"run folder {run} is not writable ({e.strerror or e})") from None


def _batch_tensors(pairs: Pairs, picks: list[tuple[int, int]], recipe, device) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, labs = [], []
    for idx, aug_seed in picks:
        img, lab = apply_joint(recipe, pairs.images[idx], pairs.labels[idx], aug_seed)
        imgs.append(img)
        labs.append(lab)
    x = torch.from_numpy(np.stack(imgs)).to(device)
    y = torch.from_numpy(np.stack(labs))[:, None].to(device)
    return x, y


def train_segmentation(data: list[Path], run: Path, *, size: int = 64, channels: int = 64, num_res_units: int = 2,
                       classes: int | None = None, epochs: float | None = None, steps: int | None = None,
                       batch_size: int = 4, lr: float = 5e-4, seed: int = 0, augment: str = "none",
                       online_flip: str = "none", checkpoint_every: int = 200, max_classes: int = 16, device: str | None = None,
                       progress: bool = True, ctx: DistContext | None = None) -> SegTrainResult:
    """Train (or resume, or find finished) the segmenter of ``run`` on the pairs of ``data`` (module docstring)."""
    run = Path(run)
    if epochs is not None and steps is not None:
        raise AugPaintError("give --epochs or --steps, not both (exactly one decides the training length)")
    if steps is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    if (steps is not None and steps < 1) or (epochs is not None and not (math.isfinite(epochs) and epochs > 0)):
        raise AugPaintError(f"--steps must be >= 1 and --epochs finite and > 0, got steps={steps}, epochs={epochs}")
    if batch_size < 1 or not (math.isfinite(lr) and lr > 0) or checkpoint_every < 1:
        raise AugPaintError("--batch-size and --checkpoint-every must be >= 1 and --lr finite and > 0")
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise AugPaintError(f"--seed must be in [-2**63, 2**64 - 1], got {seed}")
    if augment not in RECIPES or augment == "rand-aug":
        raise AugPaintError(f"--online-aug must be none, standard or light, got {augment!r}")
    if online_flip not in FLIPS:
        raise AugPaintError(f"--online-flip must be one of {', '.join(FLIPS)}, got {online_flip!r}")
    if not data:
        raise AugPaintError("train-seg needs at least one --data folder")
    ctx = ctx or init_distributed(device)
    split_batch(batch_size, ctx)
    _check_writable(run)

    folders = [open_pairs(d, max_classes=max_classes) for d in data]
    pairs = load_pairs(folders, size, progress=progress and ctx.is_rank0)
    if len(pairs) == 0:
        raise AugPaintError("the --data folders hold no labelled pairs")
    top = pairs.max_class
    if classes is None:
        if top == 0:
            raise AugPaintError("every label of the --data folders is empty (no foreground class to learn)")
        classes = top
    elif top > classes:
        bad = pairs.ids[int(np.argmax(pairs.labels.reshape(len(pairs), -1).max(1)))]
        raise AugPaintError(f"pair {bad} has class {top} but --classes is {classes}")
    cfg = SegModelConfig(classes=classes, channels=channels, num_res_units=num_res_units, size=size)
    total = steps if steps is not None else math.ceil(epochs * len(pairs) / batch_size)
    settings = {"data": [str(Path(d).resolve()) for d in data], "data_sha256": _fingerprint(folders),
                "model": cfg.to_dict(), "steps": total, "batch_size": batch_size, "lr": lr, "seed": seed,
                "augment": augment}
    if online_flip != "none":  # only then, so runs finished before the option existed still match
        settings["online_flip"] = online_flip
    settings = json.loads(json.dumps(settings))  # as stored (tuples -> lists)

    done = read_run_config(run)
    if done is not None:
        stored = done.get("training", {}).get("settings")
        if stored != settings:
            diff = sorted(k for k in set(settings) | set(stored or {}) if (stored or {}).get(k) != settings.get(k))
            raise AugPaintError(f"{run} holds a finished run with other settings ({', '.join(diff)}); "
                                f"use a new --out (or the same settings to see its summary)")
        t = done["training"]
        return SegTrainResult(run, t["steps"], t["epochs"], t["pairs"], classes, t["final_loss"], t["seconds"],
                              t["world_size"], already_done=True)

    torch.manual_seed(seed)
    model = build_unet(cfg).to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, elapsed = 0, 0.0
    state = load_state(run, settings)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, elapsed = state["step"], state["seconds"]
    barrier(ctx)  # every process has read the state before rank 0 may overwrite it

    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    net = wrap_ddp(model, ctx)
    net.train()
    stream = BatchStream(len(pairs), batch_size, seed, ctx)
    recipe = build_recipe(augment, flip=online_flip, size=size)
    window, window_sum = max(1, min(50, total // 4)), 0.0
    t0 = time.perf_counter() - elapsed
    bar = progress_bar(range(start, total), enabled=progress and ctx.is_rank0, initial=start, total=total,
                       desc="train-seg", unit="step")
    for step in bar:
        x, y = _batch_tensors(pairs, stream.batch(step), recipe, ctx.device)
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        global_loss = all_reduce_mean(loss.detach(), ctx)  # the global batch's loss, the same on every process
        if not math.isfinite(global_loss):
            raise AugPaintError(f"the loss became {global_loss} at step {step}; lower --lr")
        opt.step()
        if step >= total - window:
            window_sum += global_loss
        if step % 20 == 0 and ctx.is_rank0:
            bar.set_postfix(loss=f"{global_loss:.4f}", refresh=False)
        if (step + 1) % checkpoint_every == 0 and step + 1 < total:
            if ctx.is_rank0:
                state = {"settings": settings, "model": unwrap(net).state_dict(), "opt": opt.state_dict(),
                         "step": step + 1, "seconds": time.perf_counter() - t0}
                save_state(run, state)
            barrier(ctx)
    final_loss = window_sum / min(window, total - start)  # mean global loss over the last `window` steps
    seconds = time.perf_counter() - t0
    result = SegTrainResult(run, total, total * batch_size / len(pairs), len(pairs), classes, final_loss, seconds,
                            ctx.world_size)
    if ctx.is_rank0:
        training = {"settings": settings, "steps": total, "epochs": result.epochs,
                    "length_from": "steps" if steps is not None else "epochs", "pairs": len(pairs),
                    "empty_labels": pairs.empty_labels, "final_loss": final_loss, "seconds": round(seconds, 1),
                    "world_size": ctx.world_size, "device": ctx.device.type, "torch": torch.__version__,
                    "loss": "DiceCELoss(to_onehot_y=True, softmax=True)", "optimizer": "Adam"}
        save_run(unwrap(net), cfg, run, training)
        (run / STATE_FILE).unlink(missing_ok=True)
    barrier(ctx)
    return result


__all__ = ["train_segmentation", "SegTrainResult", "BatchStream"]
