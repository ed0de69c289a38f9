"""Dynamic batching: the items of requests from concurrent callers, packed into fixed-size engine batches.

A request is a list of items sharing a key (the embedding API's key is the seed: one engine batch has one
seed). ``workers`` threads (one per engine; default 1) each run ``run_batch(key, items) -> results`` on up to
``batch_size`` items at a time, so up to ``workers`` batches run at once (``run_batch`` must then be safe to call
from that many threads: the embedding API gives each call an idle engine):

- **Packing.** A batch starts from the oldest waiting item and takes, in arrival order, the waiting items of
  its key, up to ``batch_size``, whichever requests they belong to (a request larger than a batch spans
  several). Items of other keys wait for their own batch; the oldest item is always served next, so no key
  starves.
- **Maximum wait.** A batch starts as soon as it is full, or once its oldest item has waited ``max_wait_s``.
- **Bounded queue.** At most ``max_queue`` items wait. A request that does not fit is refused at once with
  :class:`QueueFull` (nothing of it is queued): overload is answered, not absorbed.
- **Cancellation.** ``submit`` returns a :class:`concurrent.futures.Future` that stays pending until every item
  is done, so ``future.cancel()`` works at any time before that: the request's waiting items leave the
  queue; those already in a running batch finish and their results are dropped.
- **Failure.** If ``run_batch`` raises, every request with an item in that batch gets the exception (its other
  items leave the queue); the worker goes on with the next batch.

The future's result is the list of the request's item results, in order. :meth:`DynamicBatcher.stats`
reports queue depth, batches, batch fill and samples/s for a metrics endpoint; listeners added with
:meth:`DynamicBatcher.add_batch_listener` see every finished batch (for histograms).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from ..errors import AugPaintError

RATE_WINDOW_S = 60.0  # samples/s is measured over the batches that finished in this window


class QueueFull(AugPaintError):
    """The batcher's queue cannot take the request now (retry later) or ever (split it)."""


class BatcherClosed(AugPaintError):
    """The batcher is shutting down and takes no new requests."""


@dataclass(eq=False)
class _Request:
    key: Hashable
    items: Sequence[Any]
    future: Future
    enqueued: float
    results: list = field(default_factory=list)
    remaining: int = 0


class DynamicBatcher:
    """Packs the items of concurrent requests into batches for ``workers`` threads (see the module docstring)."""

    def __init__(self, run_batch: Callable[[Hashable, list], list], batch_size: int, *, max_wait_s: float = 0.01,
                 max_queue: int = 256, name: str = "augpaint-batcher", workers: int = 1):
        if batch_size < 1 or max_queue < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError("batch_size, max_queue and workers must be >= 1 and max_wait_s >= 0")
        self.run_batch, self.batch_size = run_batch, batch_size
        self.max_wait_s, self.max_queue = max_wait_s, max_queue
        self._queue: deque[tuple[_Request, int]] = deque()  # (request, item index), in arrival order
        self._cond = threading.Condition()
        self._closed = False
        self._started = time.monotonic()
        self._counts = dict(submitted=0, refused=0, cancelled=0, failed=0, completed=0, batches=0, items=0)
        self._in_flight = 0  # items in running batches, all workers together
        self._batch_seconds = 0.0
        self._recent: deque[tuple[float, int]] = deque()  # (finish time, items) of recent batches
        self._listeners: list[Callable[[int, float], None]] = []
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ callers
    def submit(self, key: Hashable, items: Sequence[Any]) -> Future:
        """Queue a request's items under ``key``; raises QueueFull (or BatcherClosed) at once if it cannot."""
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise BatcherClosed("the service is shutting down; no new requests are taken")
            if len(items) > self.max_queue:
                self._counts["refused"] += 1
                raise QueueFull(f"a request of {len(items)} samples exceeds the queue's capacity of "
                                f"{self.max_queue}; split it into smaller requests")
            if len(self._queue) + len(items) > self.max_queue:
                self._counts["refused"] += 1
                raise QueueFull(f"queue full: {len(self._queue)} of {self.max_queue} samples waiting, this request "
                                f"needs {len(items)}; retry later")
            req = _Request(key, items, future, time.monotonic(), [None] * len(items), len(items))
            self._queue.extend((req, i) for i in range(len(items)))
            self._counts["submitted"] += 1
            self._cond.notify_all()
        future.add_done_callback(lambda f, r=req: self._forget(r))
        return future

    def _forget(self, req: _Request) -> None:
        """A request is done (cancelled, failed or complete): its waiting items leave the queue."""
        with self._cond:
            if req.future.cancelled():
                self._counts["cancelled"] += 1
            if any(r is req for r, _ in self._queue):
                self._queue = deque(entry for entry in self._queue if entry[0] is not req)
                self._cond.notify_all()

    def stats(self) -> dict:
        """Counters and rates for a metrics endpoint (a snapshot; cheap)."""
        with self._cond:
            now = time.monotonic()
            while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
                self._recent.popleft()
            window = min(RATE_WINDOW_S, now - self._started)
            batches, items = self._counts["batches"], self._counts["items"]
            return {
                "queue_depth": len(self._queue), "queue_capacity": self.max_queue, "in_flight": self._in_flight,
                "batch_size": self.batch_size, "max_wait_s": self.max_wait_s, "workers": len(self._threads),
                "batches": batches, "samples": items,
                "mean_batch_fill": items / (batches * self.batch_size) if batches else 0.0,
                "mean_batch_seconds": self._batch_seconds / batches if batches else 0.0,
                "samples_per_s": sum(n for _, n in self._recent) / window if window > 0 else 0.0,
                "requests": {k: self._counts[k] for k in ("submitted", "completed", "refused", "cancelled", "failed")},
                "uptime_s": now - self._started,
                "running": all(t.is_alive() for t in self._threads) and not self._closed,
            }

    def add_batch_listener(self, listener: Callable[[int, float], None]) -> None:
        """Call ``listener(items, seconds)`` from a worker thread after every batch (it must not raise)."""
        self._listeners.append(listener)

    def close(self, cancel_pending: bool = False, timeout: float | None = None) -> None:
        """Take no new requests; finish the queued ones (or cancel them) and stop the worker threads (``timeout``
        bounds the wait for each)."""
        with self._cond:
            self._closed = True
            pending = {id(r): r for r, _ in self._queue}.values() if cancel_pending else ()
            self._cond.notify_all()
        for req in pending:
            req.future.cancel()
        for thread in self._threads:
            thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _next_batch(self) -> tuple[Hashable, list[tuple[_Request, int]]] | None:
        """Wait for, then take, the next batch (under the lock); None when closed and drained."""
        while True:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            head = self._queue[0][0]
            same = [entry for entry in self._queue if entry[0].key == head.key]
            wait = head.enqueued + self.max_wait_s - time.monotonic()
            if len(same) < self.batch_size and wait > 0 and not self._closed:
                self._cond.wait(wait)  # more items may come; the head may be cancelled: look again
                continue
            batch = same[: self.batch_size]
            taken = set(map(id, batch))
            self._queue = deque(entry for entry in self._queue if id(entry) not in taken)
            self._in_flight += len(batch)
            return head.key, batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                got = self._next_batch()
            if got is None:
                return
            key, batch = got
            t0 = time.monotonic()
            try:
                results = self.run_batch(key, [req.items[i] for req, i in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except BaseException as exc:  # noqa: BLE001 - handed to the callers, the worker goes on
                self._finish(batch, t0, error=exc)
            else:
                self._finish(batch, t0, results=results)

    def _finish(self, batch, t0: float, results: list | None = None, error: BaseException | None = None) -> None:
        done, failed = [], []
        with self._cond:
            now = time.monotonic()
            self._in_flight -= len(batch)
            self._counts["batches"] += 1
            self._counts["items"] += len(batch)
            self._batch_seconds += now - t0
            self._recent.append((now, len(batch)))
            for n, (req, i) in enumerate(batch):
                if error is not None:
                    if req not in failed:
                        failed.append(req)
                    continue
                req.results[i] = results[n]
                req.remaining -= 1
                if req.remaining == 0:
                    done.append(req)
            self._counts["completed"] += sum(not r.future.done() for r in done)
            self._counts["failed"] += sum(not r.future.done() for r in failed)
        for req in done:  # outside the lock: done-callbacks (self._forget) take it
            _settle(req.future, result=req.results)
        for req in failed:
            _settle(req.future, error=error)
        for listener in self._listeners:
            listener(len(batch), now - t0)


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future unless its caller cancelled it meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled
        pass
