"""Sharded sampling on a real local Ray cluster (2 CPU workers, tiny preset): the same pairs and manifest as one
process, a worker killed mid-batch is restarted and its batch retried, and the CLI's --ray path."""
import json
import logging
import os
import signal
import threading
import time
import uuid

import pytest
import ray

from augpaint_fast.cli.main import main
from augpaint_fast.embed.ray_workers import run_distributed
from augpaint_fast.job.generate import SampleOptions, run_sampling

pytestmark = pytest.mark.slow

OPTS = SampleOptions(n=4, steps=3, batch_size=4, seed=9)  # 3 phantoms x 4 = 12 pairs in 3 batches
MARK = f"augpaint-test-{uuid.uuid4().hex}"  # in the environment of this test's Ray processes only


@pytest.fixture(scope="module")
def cluster():
    os.environ["AUGPAINT_TEST_RAY_MARK"] = MARK  # inherited by the workers Ray starts below
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()
        os.environ.pop("AUGPAINT_TEST_RAY_MARK", None)


@pytest.fixture(scope="module")
def single(one_torch_thread, phantom_data, weights, tmp_path_factory):
    """The single-process output, at the workers' thread count (--ray-cpus-per-worker defaults to 1)."""
    out = tmp_path_factory.mktemp("single")
    run_sampling(phantom_data, weights, out, OPTS, progress=False)
    return out


def _records(folder):
    return sorted((json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()),
                  key=lambda r: r["name"])


def _same_output(a, b):
    """Same manifest records (any order) and the same PNG bytes (bit-identical: same engine and batch size)."""
    ra, rb = _records(a), _records(b)
    assert ra == rb and len(ra) == 12
    for rec in ra:
        for kind in ("image", "label"):
            assert (a / rec[kind]).read_bytes() == (b / rec[kind]).read_bytes(), rec[kind]
    assert not list(b.glob("*/.*.tmp"))


def test_sharded_output_equals_the_single_process_output(cluster, phantom_data, weights, single, tmp_path, capsys):
    """Through the CLI: `sample --ray` on 2 workers writes the single-process pairs and manifest records."""
    def args(out, workers):
        return ["sample", "--data", str(phantom_data), "--weights", str(weights), "--out", str(tmp_path / out),
                "--n", "4", "--steps", "3", "--batch-size", "4", "--seed", "9", "--ray", "--ray-workers", workers]

    assert main(args("ray", "2")) == 0
    assert "12 pair(s) written from 3 source(s)" in capsys.readouterr().out
    _same_output(single, tmp_path / "ray")
    assert (tmp_path / "ray" / "preview.png").stat().st_size > 1000
    again = run_distributed(phantom_data, weights, tmp_path / "ray", OPTS, workers=2, progress=False)
    assert again.written == 0 and again.already_done == 12  # resumes like the single-process job
    assert main(args("other", "5")) == 2  # more workers than the cluster can place: refused, not a hang
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("augpaint-fast: error: 5 Ray worker(s) need 5 CPU(s) but the Ray cluster has 2; "
                   "lower --ray-workers")


def _worker_pids(title: bytes) -> list[int]:
    """Pids of this test's Ray workers whose process title starts with ``title``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if not fh.read().startswith(title):
                    continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if MARK.encode() in fh.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_a_worker_killed_mid_batch_is_restarted_and_the_output_is_unchanged(cluster, phantom_data, weights,
                                                                           single, tmp_path):
    killed, stop = [], threading.Event()

    def killer():  # SIGKILL the first worker seen running a batch, once
        deadline = time.monotonic() + 120
        while not stop.is_set() and not killed and time.monotonic() < deadline:
            for pid in _worker_pids(b"ray::ShardWorker.generate"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        summary = run_distributed(phantom_data, weights, tmp_path / "ray", OPTS, workers=2, progress=False)
    finally:
        stop.set()
        thread.join(10)
    assert killed, "no worker was seen running a batch"
    assert summary.written == 12
    _same_output(single, tmp_path / "ray")
