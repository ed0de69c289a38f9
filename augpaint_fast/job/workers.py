"""Every core busy: N engine processes of one thread each (``sample --workers N``, ``serve --workers N``).

One wide engine with all threads scales poorly at these batch sizes; N engines of one thread, each taking
whole batches, do not share anything but the memory bus. Each :class:`EngineProcess` holds one
``generate.Generator`` (the one batch-generation code path) in a process of its own, started with ``spawn``
(never ``fork`` after torch's threads have started), with torch (and the onnx / openvino engines) at one
thread. It takes work items and a seed, and returns the arrays of their pairs.

**Same bytes as one process.** A pair's noise depends on (seed, uid) only and every engine call is padded to
the batch size, so N workers write the pairs of ``--workers 1`` bit for bit at the same batch size and the same
threads per engine (one): ``--workers 1`` runs its one engine in this process, also at one thread.

**The default.** ``$AUGPAINT_FAST_WORKERS`` when set, else one worker per physical core on the CPU (one thread
each, so the cores are what the thread count implies), and one with a CUDA ``device``.

**Sampling** (:func:`run_with_workers`): the job is planned and its folder locked here exactly as in one process
(``Job(generator=False)``: every input checked first, finished pairs skipped); batches go to the first idle
worker and this process alone writes, in the order of the batches, so the folder, its manifest and its
resume after a kill -9 are those of a single-process run. A worker's error stops the run with its one line
(nothing of the failed batch is written); a worker that dies is named with its exit code; Ctrl-C stops the
workers at once (they ignore SIGINT: this process ends them). A worker whose parent dies exits when it next
reads or answers.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Sequence

from .. import host
from ..errors import AugPaintError
from ..progress import progress as progress_bar

WORKERS_ENV = "AUGPAINT_FAST_WORKERS"
START_METHOD = "spawn"
THREADS = 1  # torch / engine threads of each worker
_THREADED_ENGINES = ("onnx", "openvino")  # the engines with a ``threads`` option (intra-op threads)
CLOSE_TIMEOUT_S = 10.0


def check_workers(workers: int) -> None:
    if workers < 1:
        raise AugPaintError(f"workers must be >= 1, got {workers}", param="workers")


def default_workers(device: str | None = None) -> int:
    """``$AUGPAINT_FAST_WORKERS``, else one per physical core, or 1 on a CUDA ``device`` (see the module doc)."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise AugPaintError(f"${WORKERS_ENV} must be an integer >= 1, got {value!r}")
        return workers
    return 1 if str(device or "cpu").startswith("cuda") else host.physical_cores()


@contextmanager
def torch_threads(threads: int):
    """Run the block with torch at ``threads`` intra-op threads, then restore the count it had."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread_options(opts):
    """``opts`` with its engine at one thread where the engine has a thread option the user did not set."""
    if opts.engine in _THREADED_ENGINES and "threads" not in opts.engine_options:
        return replace(opts, engine_options={**opts.engine_options, "threads": THREADS})
    return opts


# ---------------------------------------------------------------------------------------------- the worker
def _describe(exc: BaseException) -> tuple[str, str | None]:
    """(one line, parameter) of an error, to raise again as an AugPaintError in the parent."""
    if isinstance(exc, AugPaintError):
        return str(exc), getattr(exc, "param", None)
    text = (str(exc).splitlines() or [""])[0]
    return f"a sampling worker failed: {type(exc).__name__}: {text}", None


def _engine_main(conn, weights: Path, opts) -> None:
    """A worker process: load a generator, then turn (items, seed) messages into pair arrays until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers on Ctrl-C
    import torch

    from .generate import Generator

    torch.set_num_threads(THREADS)
    try:
        generator = Generator(weights, opts)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        _send(conn, ("error", _describe(exc)))
        return
    reply = ("ready", generator.size)
    while _send(conn, reply):
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if msg is None:
            return
        items, seed = msg
        try:
            reply = ("pairs", [(p.image, p.label, p.kernel) for p in generator.generate(items, seed)])
        except BaseException as exc:  # noqa: BLE001
            reply = ("error", _describe(exc))


def _send(conn, message) -> bool:
    """Send to the parent; False when it is gone."""
    try:
        conn.send(message)
    except OSError:
        return False
    return True


class EngineProcess:
    """One ``Generator`` in a process of its own, at one thread: ``generate(items, seed)`` as the generator's,
    or ``send`` then ``receive`` to keep several busy. ``size``, ``opts`` and ``weights`` are the generator's.

    Construction starts the process and returns at once; ``wait_ready()`` waits until the models are loaded
    (so that N workers load in parallel) and raises the worker's error. ``close()`` stops it.
    """

    def __init__(self, weights: Path, opts, context=None):
        context = context or mp.get_context(START_METHOD)
        self.weights, self.opts = Path(weights), opts
        self.size: int | None = None
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_engine_main, args=(child, self.weights, one_thread_options(opts)),
                                       name="augpaint-engine", daemon=True)
        self.process.start()
        child.close()  # so that this end sees EOF when the worker dies

    def wait_ready(self) -> "EngineProcess":
        self.size = self.receive()
        return self

    def send(self, items: Sequence, seed: int) -> None:
        self.conn.send((list(items), seed))

    def receive(self):
        """The worker's next answer: its image size once ready, then pair arrays [(image, label, kernel)]."""
        ready = wait([self.conn, self.process.sentinel])
        try:
            if self.conn in ready or self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "error":
                    message, param = value
                    raise AugPaintError(message, param=param)
                return value
        except (EOFError, OSError):
            pass
        self.process.join(1.0)
        raise AugPaintError(f"a sampling worker (pid {self.process.pid}) died (exit code {self.process.exitcode}); "
                            "rerun the same command to resume")

    def generate(self, items: Sequence, seed: int) -> list:
        """The generator's pairs of ``items`` (``generate.Pair``, rebuilt here around the caller's items)."""
        from .generate import Pair

        self.send(items, seed)
        return [Pair(it, image, label, kernel) for it, (image, label, kernel) in zip(items, self.receive())]

    def close(self, now: bool = False) -> None:
        """Stop the worker: after its current batch, or ``now`` (terminated; Ctrl-C and errors)."""
        if self.process.is_alive() and not now and _send(self.conn, None):
            self.process.join(CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


def start_engines(weights: Path, opts, workers: int) -> list[EngineProcess]:
    """``workers`` engine processes, loaded (in parallel); if one fails, all are stopped and its error raised."""
    engines = [EngineProcess(weights, opts) for _ in range(workers)]
    try:
        for engine in engines:
            engine.wait_ready()
    except BaseException:
        for engine in engines:
            engine.close(now=True)
        raise
    return engines


# ---------------------------------------------------------------------------------------------- sampling
def run_with_workers(data: Path, weights: Path, out: Path, opts, workers: int, progress: bool = True):
    """``generate.run_sampling`` with the batches generated by ``workers`` engine processes (module doc).

    As in one process, the summary's time starts once the models are loaded.
    """
    from .generate import Job, SampleSummary

    check_workers(workers)
    job = Job(data, weights, out, opts, progress, generator=False)
    with job.writer:
        summary = SampleSummary(sources=len(job.sources), out=str(job.out))
        work = job.plan(summary)
        batches = [work[i:i + opts.batch_size] for i in range(0, len(work), opts.batch_size)]
        engines: list[EngineProcess] = []
        finished = False
        try:
            engines = start_engines(job.weights, opts, min(workers, len(batches)))
            t0 = time.perf_counter()
            _write_batches(job, engines, batches, summary)
            summary.seconds = time.perf_counter() - t0
            finished = True
        finally:
            for engine in engines:
                engine.close(now=not finished)
        job.preview()
    return summary


def _write_batches(job, engines: list[EngineProcess], batches: list, summary) -> None:
    """Generate ``batches`` on ``engines``, each batch on the first idle one, and write each batch's pairs once
    the batches before it are written: the order of one process."""
    todo = deque(enumerate(batches))
    running: dict[EngineProcess, int] = {}
    results: dict[int, list] = {}
    written = 0

    def feed(engine: EngineProcess) -> None:
        if todo:
            index, batch = todo.popleft()
            engine.send(batch, job.opts.seed)
            running[engine] = index

    bar = progress_bar(enabled=job.progress and bool(batches), total=sum(map(len, batches)),
                       desc=f"sample ({len(engines)} workers)", unit="pair")
    try:
        for engine in engines:
            feed(engine)
        while running:
            ready = set(wait([e.conn for e in running] + [e.process.sentinel for e in running]))
            for engine in [e for e in running if e.conn in ready or e.process.sentinel in ready]:
                index = running.pop(engine)
                results[index] = engine.receive()
                feed(engine)
            while written in results:
                for item, (image, label, kernel) in zip(batches[written], results.pop(written)):
                    job.writer.write_pair(item.name, image, label, job.record(item, kernel))
                    summary.written += 1
                    summary.kernel_path = kernel
                    bar.update(1)
                written += 1
    finally:
        bar.close()  # before any error line, so that line is the last one
