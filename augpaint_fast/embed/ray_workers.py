"""Sharded sampling on Ray: ``augpaint-fast sample ... --ray [ADDRESS] [--ray-workers N]``.

The driver plans the run exactly as the single-process job does (``generate.Job(generator=False)``: reads and
checks every input, opens the output folder, skips finished pairs) and cuts the pending pairs into batches of
``batch_size``. Ray actors, one per GPU with ``--device cuda`` or CPU workers of ``--ray-cpus-per-worker``
cores each, each load their own engine and turn batches into encoded PNGs (``generate.Generator``, the one
batch-generation code path). The driver alone writes: atomic files and one manifest line per pair as batches
arrive, in the job's output layout. Workers need no shared filesystem: the sources (arrays) and the weights
folder (its files' bytes) travel once through Ray's object store; results come back as PNG bytes.

**Same output as one process.** A pair's noise depends on (seed, uid) only and every engine call is padded to
``batch_size``, so the pairs equal a single-process run with the same engine and batch size: bit-identical on
CPU at the workers' torch thread count (``--ray-cpus-per-worker``), as the tests check, and within a grey level
at another; the manifest holds the same records, in completion order.

**Crash safety.** A worker that dies is restarted by Ray (``max_restarts``) and its batch retried
(``max_task_retries``); nothing is recorded before the driver has written its files, so killing the driver at
any moment loses nothing either, and rerunning the command resumes.

Ray is started locally when no address is given (``ray.init(num_cpus=..., include_dashboard=False)``) and shut
down at the end; with an address (``auto``, ``HOST:6379``, ``ray://HOST:10001``) the driver joins that cluster.
Install with ``pip install 'augpaint-fast[distributed]'``.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path

from ..errors import AugPaintError
from ..host import optional_import

RETRIES = 3  # restarts of a dead worker, and retries of the batch it was running
IN_FLIGHT = 2  # batches queued per worker, so a worker never idles while the driver writes


def _ray():
    return optional_import("ray", extra="distributed", feature="--ray", packages="ray")


class ShardWorker:
    """A Ray actor: one engine, turning batches of (source id, k) into encoded pairs.

    The models are loaded on the first batch (and again after Ray restarts a dead worker) from ``setup``, a
    one-element list holding the object-store reference of (weights folder files, options, sources): a
    reference inside a list is passed as is, so every retried batch can rebuild its worker from it.
    """

    def __init__(self, threads: int):
        self.threads = threads
        self.generator = None
        self.sources: dict = {}

    def _load(self, setup: list) -> None:
        import ray
        import torch

        from ..job.generate import Generator

        weights_files, opts, sources = ray.get(setup[0])
        torch.set_num_threads(self.threads)
        folder = Path(tempfile.mkdtemp(prefix="augpaint-weights-"))
        try:
            for rel, data in weights_files.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
            self.generator = Generator(folder, opts)  # the models are in memory once loaded
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.sources = {src.id: src for src in sources}

    def generate(self, batch: list[tuple[str, int]], seed: int, setup: list) -> list[tuple[str, bytes, bytes, str]]:
        from ..data.imageio import encode_image_png, encode_label_png
        from ..job.generate import work_item

        if self.generator is None:
            self._load(setup)
        items = [work_item(self.sources[sid], k, seed, self.generator.opts.flip) for sid, k in batch]
        return [(p.item.name, encode_image_png(p.image), encode_label_png(p.label, p.item.name), p.kernel)
                for p in self.generator.generate(items, seed)]

    def pid(self) -> int:
        return os.getpid()


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _connect(ray, address: str | None, num_cpus: int, num_gpus: int) -> bool:
    """Join ``address``, reuse a running Ray, or start a local one; True when this call started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a sampling run
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address not in (None, "local"):
            ray.init(address=address, **kwargs)
            return True
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address not in (None, "local") else "a local Ray instance"
        raise AugPaintError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return True


def run_distributed(data: Path, weights: Path, out: Path, opts, address: str | None = None,
                    workers: int | None = None, cpus_per_worker: int = 1, progress: bool = True):
    """``generate.run_sampling`` with the batches generated by Ray workers; returns the same summary."""
    from ..job.generate import Job, SampleSummary
    from ..progress import progress as progress_bar

    ray = _ray()
    if workers is not None and workers < 1:
        raise AugPaintError(f"--ray-workers must be >= 1, got {workers}")
    if cpus_per_worker < 1:
        raise AugPaintError(f"--ray-cpus-per-worker must be >= 1, got {cpus_per_worker}")
    job = Job(data, weights, out, opts, progress, generator=False)
    summary = SampleSummary(sources=len(job.sources), out=str(job.out))
    t0 = time.perf_counter()
    work = job.plan(summary)
    batches = deque(work[i:i + opts.batch_size] for i in range(0, len(work), opts.batch_size))
    if batches:
        gpu = str(opts.engine_options.get("device", "cpu")).startswith("cuda")
        local_workers = workers or (_cuda_count() if gpu else max(1, (os.cpu_count() or 1) // cpus_per_worker))
        started = _connect(ray, address, num_cpus=local_workers * cpus_per_worker,
                           num_gpus=local_workers if gpu else 0)
        actors = []
        bar = progress_bar(enabled=progress, total=len(work), desc="sample (ray)", unit="pair")
        try:
            resources = ray.cluster_resources()
            capacity = int(resources.get("GPU", 0)) if gpu else int(resources.get("CPU", 0)) // cpus_per_worker
            n = workers or capacity
            if not 1 <= n <= capacity:  # an actor that cannot be placed would wait forever
                need = f"{n} GPU(s)" if gpu else f"{max(n, 1) * cpus_per_worker} CPU(s)"
                raise AugPaintError(f"{max(n, 1)} Ray worker(s) need {need} but the Ray cluster has "
                                    f"{int(resources.get('GPU' if gpu else 'CPU', 0))}; lower --ray-workers")
            worker_opts = opts
            if gpu:  # Ray gives each GPU actor its own device as cuda:0
                from dataclasses import replace

                worker_opts = replace(opts, engine_options={**opts.engine_options, "device": "cuda"})
            needed = {it.source.id: it.source for it in work}
            setup = [ray.put((_folder_files(job.weights), worker_opts, list(needed.values())))]
            remote = ray.remote(ShardWorker).options(num_cpus=cpus_per_worker, num_gpus=1 if gpu else 0,
                                                     max_restarts=RETRIES, max_task_retries=RETRIES)
            actors = [remote.remote(cpus_per_worker) for _ in range(min(n, len(batches)))]
            by_name = {it.name: it for it in work}
            pending = {}

            def submit(actor) -> None:
                batch = batches.popleft()
                pending[actor.generate.remote([(it.source.id, it.k) for it in batch], opts.seed, setup)] = actor

            for actor in actors:
                for _ in range(IN_FLIGHT):
                    if batches:
                        submit(actor)
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                actor = pending.pop(ref)
                for name, image_png, label_png, kernel in _get(ray, ref):
                    job.writer.write_encoded(name, image_png, label_png, job.record(by_name[name], kernel))
                    summary.written += 1
                    summary.kernel_path = kernel
                    bar.update(1)
                if batches:
                    submit(actor)
        finally:
            bar.close()
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    job.preview()
    return summary


def _get(ray, ref):
    """ray.get, with a worker's error as one AugPaintError line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, AugPaintError):
            raise AugPaintError(str(cause)) from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise AugPaintError(f"a Ray worker died {RETRIES + 1} times on the same batch, or could not start "
                            f"({str(exc).splitlines()[0]}); rerun the same command to resume") from None


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()
