"""The service on N engine processes (``serve --workers N``): concurrent requests come back with the bytes of one
engine, and /metrics, /health and shutdown keep working. One engine runs in this process at one thread
(``one_torch_thread``), the threads of each worker."""
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from augpaint_fast.embed.api import from_pretrained
from augpaint_fast.embed.service.app import create_app

from ._http import TIMEOUT, ThreadServer, augment, phantom_upload

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # starts worker processes

JOBS = [(j % 3, j % 2, 1 + j % 3) for j in range(8)]  # (source, seed, n) of 8 clients


def _serve_concurrently(weights, phantom_data, workers: int) -> tuple[dict, dict]:
    """{(source, seed, k): (image PNG, label PNG)} of 8 concurrent clients, and the batcher's stats after."""
    aug = from_pretrained(weights, steps=3, batch_size=2, max_wait_ms=5, workers=workers)
    with ThreadServer(create_app(aug)) as srv:
        def call(job):
            i, seed, n = job
            with httpx.Client() as client:
                return job, augment(srv.url, phantom_upload(phantom_data, i), n=n, seed=seed, client=client)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, JOBS, timeout=600))
        pairs = {}
        for (i, seed, n), r in answers:
            assert r.status_code == 200, r.text
            assert [p["k"] for p in r.json()["pairs"]] == list(range(n))
            pairs.update({(i, seed, p["k"]): (p["image_png"], p["label_png"]) for p in r.json()["pairs"]})
        assert httpx.get(f"{srv.url}/health", timeout=TIMEOUT).json()["status"] == "ok"
        stats = httpx.get(f"{srv.url}/metrics", params={"format": "json"}, timeout=TIMEOUT).json()
        assert "augpaint_workers" in httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT).text
    return pairs, stats


def test_two_workers_answer_concurrent_requests_with_the_bytes_of_one(weights, phantom_data):
    one, _ = _serve_concurrently(weights, phantom_data, workers=1)
    two, stats = _serve_concurrently(weights, phantom_data, workers=2)
    assert len(one) == 12  # 15 samples asked, (0, 0, 0), (1, 1, 0) and (1, 1, 1) twice
    assert two == one
    assert stats["workers"] == 2 and stats["requests"]["completed"] == 8 and stats["queue_depth"] == 0
