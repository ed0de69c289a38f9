"""DynamicBatcher: packing by key, maximum wait, the bounded queue, cancellation and failures (no engine: the
batch function records what it was given)."""
import threading
import time
from concurrent.futures import CancelledError

import pytest

from augpaint_fast.embed.batcher import BatcherClosed, DynamicBatcher, QueueFull

TIMEOUT = 10  # seconds any wait in these tests may take at most


class Recorder:
    """run_batch that records (key, items), optionally blocking until released or failing on an item."""

    def __init__(self, block=False, fail_on=None):
        self.batches, self.fail_on = [], fail_on
        self.entered, self.release = threading.Event(), threading.Event()
        if not block:
            self.release.set()

    def __call__(self, key, items):
        self.batches.append((key, list(items)))
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        if self.fail_on in items:
            raise ValueError(f"boom on {self.fail_on}")
        return [(key, item) for item in items]


def test_requests_are_packed_into_full_batches_and_results_come_back_in_order():
    run = Recorder()
    b = DynamicBatcher(run, batch_size=4, max_wait_s=0.5)  # the 4 requests arrive well within the wait
    futures = [b.submit("s", ["x0"])] + [b.submit("s", [f"r{i}a", f"r{i}b"]) for i in range(3)]
    results = [f.result(TIMEOUT) for f in futures]
    assert results[0] == [("s", "x0")]
    assert results[2] == [("s", "r1a"), ("s", "r1b")]
    # 7 items with batch_size 4: full batches in arrival order, a request may span two of them
    assert [items for _, items in run.batches] == [["x0", "r0a", "r0b", "r1a"], ["r1b", "r2a", "r2b"]]
    stats = b.stats()
    assert stats["batches"] == 2 and stats["samples"] == 7 and stats["mean_batch_fill"] == pytest.approx(7 / 8)
    assert stats["requests"]["completed"] == 4 and stats["queue_depth"] == 0
    b.close()


def test_a_lone_request_runs_after_the_maximum_wait_not_before():
    run = Recorder()
    b = DynamicBatcher(run, batch_size=8, max_wait_s=0.2)
    t0 = time.monotonic()
    assert b.submit(1, ["a"]).result(TIMEOUT) == [(1, "a")]
    waited = time.monotonic() - t0
    assert 0.2 <= waited < 0.2 + TIMEOUT
    b.close()


def test_items_of_different_keys_never_share_a_batch_and_the_oldest_goes_first():
    run = Recorder(block=True)
    b = DynamicBatcher(run, batch_size=4, max_wait_s=0.0)
    blocker = b.submit("k0", ["block"])
    assert run.entered.wait(TIMEOUT)  # the worker is busy: the next requests queue up behind it
    fa, fb, fc = b.submit("k1", ["a1", "a2"]), b.submit("k2", ["b1"]), b.submit("k1", ["a3"])
    run.release.set()
    for f in (blocker, fa, fb, fc):
        f.result(TIMEOUT)
    assert run.batches[1:] == [("k1", ["a1", "a2", "a3"]), ("k2", ["b1"])]
    b.close()


def test_a_full_queue_refuses_at_once_and_nothing_of_the_request_is_queued():
    run = Recorder(block=True)
    b = DynamicBatcher(run, batch_size=2, max_wait_s=0.0, max_queue=3)
    running = b.submit(0, ["r"])
    assert run.entered.wait(TIMEOUT)
    queued = b.submit(0, ["q1", "q2"])
    t0 = time.monotonic()
    with pytest.raises(QueueFull, match="queue full: 2 of 3 samples waiting, this request needs 2"):
        b.submit(0, ["x", "y"])
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(QueueFull, match="exceeds the queue's capacity of 3; split it"):
        b.submit(0, list("abcd"))
    assert b.stats()["queue_depth"] == 2 and b.stats()["requests"]["refused"] == 2
    run.release.set()
    assert running.result(TIMEOUT) == [(0, "r")] and len(queued.result(TIMEOUT)) == 2
    assert all("x" not in items for _, items in run.batches)
    b.close()


def test_cancelling_a_request_withdraws_its_waiting_items():
    run = Recorder(block=True)
    b = DynamicBatcher(run, batch_size=2, max_wait_s=0.0, max_queue=8)
    running = b.submit(0, ["r"])
    assert run.entered.wait(TIMEOUT)
    doomed, kept = b.submit(0, ["d1", "d2", "d3"]), b.submit(0, ["k1"])
    assert b.stats()["queue_depth"] == 4
    assert doomed.cancel()
    assert b.stats()["queue_depth"] == 1 and b.stats()["requests"]["cancelled"] == 1
    run.release.set()
    assert kept.result(TIMEOUT) == [(0, "k1")] and running.result(TIMEOUT) == [(0, "r")]
    with pytest.raises(CancelledError):
        doomed.result(0)
    assert all(not item.startswith("d") for _, items in run.batches for item in items)
    b.close()


def test_cancelling_a_running_request_drops_its_result_and_the_worker_goes_on():
    run = Recorder(block=True)
    b = DynamicBatcher(run, batch_size=4, max_wait_s=0.0)
    f = b.submit(0, ["a"])
    assert run.entered.wait(TIMEOUT)
    assert f.cancel()
    run.release.set()
    assert b.submit(0, ["b"]).result(TIMEOUT) == [(0, "b")]
    assert f.cancelled()
    b.close()


def test_a_failing_batch_fails_its_requests_only():
    run = Recorder(fail_on="bad")
    b = DynamicBatcher(run, batch_size=2, max_wait_s=0.05)
    bad, good = b.submit(0, ["bad", "x", "y"]), b.submit(1, ["ok"])
    with pytest.raises(ValueError, match="boom on bad"):
        bad.result(TIMEOUT)
    assert good.result(TIMEOUT) == [(1, "ok")]
    assert b.submit(0, ["z"]).result(TIMEOUT) == [(0, "z")]
    assert all("y" not in items for _, items in run.batches)  # the failed request's rest left the queue
    assert b.stats()["requests"]["failed"] == 1
    b.close()


def test_concurrent_callers_all_get_their_own_results():
    run = Recorder()
    b = DynamicBatcher(run, batch_size=8, max_wait_s=0.01, max_queue=1000)
    results = {}

    def client(c):
        for r in range(10):
            items = [(c, r, i) for i in range(1 + (c + r) % 3)]
            results[(c, r)] = (items, b.submit("seed", items).result(TIMEOUT))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert len(results) == 80
    for items, got in results.values():
        assert got == [("seed", item) for item in items]
    assert b.stats()["mean_batch_fill"] > 1 / 8  # requests were packed together
    b.close()


def test_closed_batcher_finishes_queued_work_and_refuses_new():
    run = Recorder()
    b = DynamicBatcher(run, batch_size=4, max_wait_s=1.0)
    f = b.submit(0, ["a"])
    b.close(timeout=TIMEOUT)  # does not wait out max_wait: closing flushes
    assert f.result(0) == [(0, "a")]
    with pytest.raises(BatcherClosed):
        b.submit(0, ["b"])
    assert not b.stats()["running"]


def test_two_workers_run_two_batches_at_once_and_keep_the_queue_limit_and_cancellation():
    both_running = threading.Barrier(3, timeout=TIMEOUT)  # the two workers and the test
    release = threading.Event()

    def run(key, items):
        if key == "block":
            both_running.wait()
            assert release.wait(TIMEOUT)
        return [(key, item) for item in items]

    b = DynamicBatcher(run, batch_size=2, max_wait_s=0.0, max_queue=4, workers=2)
    running = [b.submit("block", ["a", "b"]), b.submit("block", ["c", "d"])]
    both_running.wait()  # would time out with one worker: its batch blocks the other
    stats = b.stats()
    assert stats["workers"] == 2 and stats["in_flight"] == 4 and stats["running"]
    waiting = b.submit("w", ["e", "f"])
    with pytest.raises(QueueFull):
        b.submit("w", ["g", "h", "i"])  # 2 waiting + 3 > max_queue 4: the running batches do not count
    assert waiting.cancel() and b.stats()["queue_depth"] == 0
    release.set()
    assert [f.result(TIMEOUT) for f in running] == [[("block", "a"), ("block", "b")], [("block", "c"), ("block", "d")]]
    assert b.submit("w", ["j"]).result(TIMEOUT) == [("w", "j")]
    assert b.stats()["in_flight"] == 0 and b.stats()["requests"]["cancelled"] == 1
    b.close(timeout=TIMEOUT)
    assert not b.stats()["running"]
