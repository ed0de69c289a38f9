"""Cross-process locks: NameLocks excludes other processes holding any of the same names, never deadlocks on
overlapping sets, and is released when its holder is killed."""
import multiprocessing
import os
import signal
import time

from augpaint_fast.locks import NameLocks, folder_lock


def _hold_then_signal(path, names, held, release):
    with NameLocks(path).hold(names):
        held.set()
        release.wait(60)


def _try_hold(path, names, got):
    with NameLocks(path).hold(names):
        got.set()


def test_a_name_held_by_another_process_blocks_until_released(tmp_path):
    ctx = multiprocessing.get_context("fork")
    held, release, got = ctx.Event(), ctx.Event(), ctx.Event()
    owner = ctx.Process(target=_hold_then_signal, args=(tmp_path / "l", ["a", "b"], held, release))
    owner.start()
    assert held.wait(60)
    waiter = ctx.Process(target=_try_hold, args=(tmp_path / "l", ["c", "b"], got))
    waiter.start()
    assert not got.wait(0.5)  # "b" is taken
    with NameLocks(tmp_path / "l").hold(["e", "f"]):  # names nobody holds are free meanwhile
        pass
    release.set()
    assert got.wait(60)
    for p in (owner, waiter):
        p.join(60)
        assert p.exitcode == 0


def test_a_killed_holder_releases_its_names(tmp_path):
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    owner = ctx.Process(target=_hold_then_signal, args=(tmp_path / "l", ["a"], held, release))
    owner.start()
    assert held.wait(60)
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(60)
    t0 = time.monotonic()
    with NameLocks(tmp_path / "l").hold(["a"]):
        assert time.monotonic() - t0 < 10


def _churn(path, names, rounds):
    locks = NameLocks(path)
    for _ in range(rounds):
        with locks.hold(names):
            pass


def test_overlapping_sets_taken_in_any_order_never_deadlock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_churn, args=(tmp_path / "l", names, 200))
             for names in (["a", "b", "c"], ["c", "b", "a"], ["b", "d"])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]


def _take_folder_lock(path, go, got):
    go.wait(60)
    with folder_lock(path):
        got.set()


def test_folder_lock_excludes_another_process_until_released(tmp_path):
    ctx = multiprocessing.get_context("fork")
    go, got = ctx.Event(), ctx.Event()
    # started before the lock is taken: a child forked while holding it would inherit (and keep) the lock
    p = ctx.Process(target=_take_folder_lock, args=(tmp_path / ".lock", go, got))
    p.start()
    with folder_lock(tmp_path / ".lock"):
        go.set()
        assert not got.wait(0.5)
    assert got.wait(60)
    p.join(60)
    assert p.exitcode == 0


def test_a_child_forked_while_the_lock_is_held_does_not_keep_it(tmp_path):
    ctx = multiprocessing.get_context("fork")
    go, got = ctx.Event(), ctx.Event()
    with folder_lock(tmp_path / ".lock"):
        p = ctx.Process(target=_take_folder_lock, args=(tmp_path / ".lock", go, got))
        p.start()  # inherits the locked descriptor
        go.set()
        assert not got.wait(0.5)
    assert got.wait(60)  # released when this process left the block, though the child still runs
    p.join(60)
    assert p.exitcode == 0
