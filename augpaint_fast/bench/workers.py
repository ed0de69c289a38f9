"""A bench row of N one-thread engines at once: what ``sample --workers N`` and ``serve --workers N`` get.

Each worker is a process of its own (started with ``spawn``, torch and the engine at one thread, as
``job.workers`` runs them) that rebuilds the bench's random-weight models from the preset and seed (the same
weights, so the same cached exports), its engine and the bench's batch, and runs AugPaint's method
(``runner.augpaint_method``: same seed, same uids, the same timing and scaling) on command. A repeat sends "run"
to all N at once; each times its own whole batch, and the row's seconds per batch are the slowest worker's
seconds / N, so samples/s = N x B / slowest: the throughput of N engines each taking whole batches.
"""
from __future__ import annotations

import multiprocessing as mp
import signal

import torch

from ..errors import AugPaintError
from ..job.workers import START_METHOD, THREADS
from . import runner


def _worker_main(conn, engine_name: str, options: dict, preset: str, seed: int, steps: int, timed: int) -> None:
    """One worker: build the models and engine, then answer ("warm" | "run", batch) with ("ok", (seconds,
    kernel)) until None; any error is answered with ("error", line)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers
    from ..core.schedule import ddim_schedule
    from ..engines import create_engine

    torch.set_num_threads(THREADS)
    try:
        work = runner.Workload.build(preset, seed, pixel=False)
        engine = create_engine(engine_name, work.autoencoder, work.unet, **options)
        schedule = ddim_schedule(steps, 1.0)
        methods: dict[int, runner.Method] = {}
        conn.send(("ok", None))
        while (msg := conn.recv()) is not None:
            what, batch = msg
            if batch not in methods:
                inputs = runner.Inputs.make(work, batch, engine.device)
                methods[batch] = runner.augpaint_method(engine, work, inputs, schedule, timed, seed)
            method = methods[batch]
            seconds = method.warm() if what == "warm" else method.run()["augpaint"]
            conn.send(("ok", (seconds, method.info.get("kernel"))))
    except (EOFError, OSError):  # the parent is gone
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"))


class WorkerPool:
    """N worker processes of one configuration (a context manager: the workers stop on exit)."""

    def __init__(self, workers: int, engine: str, options: dict, preset: str, seed: int, steps: int, timed: int):
        context = mp.get_context(START_METHOD)
        self.workers, self.conns, self.processes = workers, [], []
        try:
            for _ in range(workers):
                conn, child = context.Pipe()
                process = context.Process(target=_worker_main, daemon=True, name="augpaint-bench-worker",
                                          args=(child, engine, options, preset, seed, steps, timed))
                process.start()
                child.close()
                self.conns.append(conn)
                self.processes.append(process)
            self._gather()  # every worker has built its engine
        except BaseException:
            self.close()
            raise

    def _gather(self) -> list:
        out = []
        for conn, process in zip(self.conns, self.processes):
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                process.join(1.0)
                raise AugPaintError(f"a bench worker (pid {process.pid}) died (exit code {process.exitcode})")
            if kind == "error":
                raise AugPaintError(f"a bench worker failed: {value}")
            out.append(value)
        return out

    def _all(self, what: str, batch: int) -> list[tuple[float, str]]:
        for conn in self.conns:
            conn.send((what, batch))
        return self._gather()

    def method(self, batch: int, key: str = "augpaint") -> runner.Method:
        """The row's method at ``batch``: each repeat, every worker runs one whole batch at once; {key: the
        slowest worker's seconds / N} (``info["kernel"]``: the workers' fused-step path)."""
        method = runner.Method(lambda: self._all("warm", batch), None, {"workers": self.workers})

        def run() -> dict[str, float]:
            results = self._all("run", batch)
            method.info["kernel"] = results[0][1]
            return {key: max(seconds for seconds, _ in results) / self.workers}

        method.run = run
        return method

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(10.0)
            if process.is_alive():
                process.terminate()
                process.join()
        for conn in self.conns:
            conn.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
