"""The HTTP service, driven over real sockets on 127.0.0.1: `augpaint-fast serve` as a subprocess for the
correctness and load tests, its server in a thread (same app) for overload, cancellation and shutdown. Every loop
is bounded in count and time."""
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from augpaint_fast.embed.api import from_pretrained
from augpaint_fast.job.generate import SampleOptions, run_sampling
from augpaint_fast.embed.service.app import Limits, create_app

from ._http import TIMEOUT, ThreadServer, augment, encoded, free_port, phantom_upload, wait_healthy

pytestmark = pytest.mark.slow

STEPS, BATCH = 3, 4


@pytest.fixture(scope="module")
def server(weights):
    """`augpaint-fast serve` on a free port: small limits so the tests can reach them."""
    port = free_port()
    cmd = [sys.executable, "-m", "augpaint_fast", "serve", "--weights", str(weights), "--port", str(port),
           "--steps", str(STEPS), "--batch-size", str(BATCH), "--max-queue", "64", "--max-n", "8",
           "--max-upload-mb", "1", "--max-pixels", "1000000", "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # graceful shutdown, as Ctrl-C
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-2000:]
    assert b"serving" in out


def _png(b64: str) -> bytes:
    return base64.b64decode(b64)


def test_health_and_metrics(server):
    health = httpx.get(f"{server}/health", timeout=TIMEOUT)
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["batch_size"] == BATCH
    text = httpx.get(f"{server}/metrics", timeout=TIMEOUT).text
    for name in ("augpaint_queue_depth", "augpaint_batch_fill_bucket", "augpaint_samples_per_s",
                 "augpaint_augment_seconds_bucket", 'augpaint_requests_total{outcome="refused"}'):
        assert name in text
    stats = httpx.get(f"{server}/metrics", params={"format": "json"}, timeout=TIMEOUT).json()
    assert stats["queue_capacity"] == 64 and stats["settings"]["steps"] == STEPS


def test_augment_returns_the_sampling_jobs_pairs(server, phantom_data, weights, tmp_path):
    run_sampling(phantom_data, weights, tmp_path / "job", SampleOptions(n=3, steps=STEPS, batch_size=BATCH, seed=5),
                 progress=False)
    with httpx.Client() as client:
        r = augment(server, phantom_upload(phantom_data, 1), n=3, seed=5, source_id="phantom_0001", client=client)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["n"] == 3 and body["source_id"] == "phantom_0001" and body["image_size"] == 64
        for pair in body["pairs"]:
            assert _png(pair["image_png"]) == (tmp_path / "job" / "images" / f"{pair['name']}.png").read_bytes()
            assert _png(pair["label_png"]) == (tmp_path / "job" / "labels" / f"{pair['name']}.png").read_bytes()
        z = augment(server, phantom_upload(phantom_data, 1), query="?format=zip", n=2, seed=5,
                    source_id="phantom_0001", client=client)
        assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
            records = [json.loads(line) for line in zf.read("manifest.jsonl").decode().splitlines()]
            assert [r["name"] for r in records] == ["phantom_0001_0", "phantom_0001_1"]
            assert zf.read("images/phantom_0001_1.png") == _png(body["pairs"][1]["image_png"])


def test_50_requests_from_8_clients_none_lost(server, phantom_data):
    before = httpx.get(f"{server}/metrics", params={"format": "json"}, timeout=TIMEOUT).json()
    jobs = [(j % 3, j % 2, 1 + j % 2) for j in range(50)]  # (source, seed, n)

    def call(job):
        i, seed, n = job
        with httpx.Client() as client:
            return job, augment(server, phantom_upload(phantom_data, i), n=n, seed=seed, client=client)

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, jobs, timeout=600))
    assert time.monotonic() - t0 < 600
    assert len(answers) == 50
    first_seen = {}
    for (i, seed, n), r in answers:
        assert r.status_code == 200, r.text
        pairs = r.json()["pairs"]
        assert [p["k"] for p in pairs] == list(range(n)) and r.json()["seed"] == seed
        for p in pairs:  # the same (source, seed, k) always comes back with the same bytes
            key = (i, seed, p["k"])
            assert first_seen.setdefault(key, p["image_png"]) == p["image_png"]
    label = np.asarray(Image.open(io.BytesIO(_png(answers[0][1].json()["pairs"][0]["label_png"]))))
    assert np.array_equal(label, np.asarray(Image.open(phantom_data / "labels" / "phantom_0000.png")))
    after = httpx.get(f"{server}/metrics", params={"format": "json"}, timeout=TIMEOUT).json()
    assert after["requests"]["completed"] - before["requests"]["completed"] == 50
    assert after["samples"] - before["samples"] == sum(n for *_, n in jobs)
    assert after["queue_depth"] == 0


def test_malformed_and_oversized_uploads_are_4xx_with_a_reason(server, phantom_data):
    files = phantom_upload(phantom_data, 0)
    image, label = files["image"][1], files["label"][1]
    lab = np.asarray(Image.open(io.BytesIO(label)))
    cases = {  # name: (files, fields, status, words in the detail)
        "not an image": ({"image": ("x.png", b"not a png"), "label": files["label"]}, {}, 400, "not a readable image"),
        "truncated png": ({"image": ("x.png", image[: len(image) // 2]), "label": files["label"]}, {}, 400,
                          "corrupt or truncated"),
        "no label": ({"image": files["image"]}, {}, 422, "label"),
        "size mismatch": ({"image": files["image"], "label": ("l.png", encoded(lab[:32, :32]))}, {}, 400,
                          "same size"),
        "empty label": ({"image": files["image"], "label": ("l.png", encoded(np.zeros_like(lab)))}, {}, 400,
                        "no foreground"),
        "colour label": ({"image": files["image"],
                          "label": ("l.png", encoded(np.stack([lab * 40, lab, lab], -1).astype(np.uint8)))},
                         {}, 400, "colour image"),
        "n too large": (files, {"n": "9"}, 422, "less than or equal to 8"),
        "n zero": (files, {"n": "0"}, 422, "greater than or equal to 1"),
        "seed negative": (files, {"seed": "-1"}, 422, "greater than or equal to 0"),
        "seed not a number": (files, {"seed": "abc"}, 422, "integer"),
        "bad source id": (files, {"source_id": "../etc"}, 400, "not usable as a file stem"),
        "too many pixels": ({"image": ("big.png", encoded(np.zeros((1001, 1000), np.uint8))),
                             "label": files["label"]}, {}, 413, "more than the limit of 1000000"),
        "body too large": ({"image": ("big.bin", os.urandom(1_100_000)), "label": files["label"]}, {}, 413,
                           "exceeds the limit of 1048576 bytes"),
    }
    with httpx.Client() as client:
        for name, (upload, fields, status, words) in cases.items():
            r = client.post(f"{server}/augment", files=upload, data=fields, timeout=TIMEOUT)
            assert r.status_code == status, (name, r.status_code, r.text)
            assert words in json.dumps(r.json()["detail"]), (name, r.text)
        r = client.post(f"{server}/augment", json={"image": "x"}, timeout=TIMEOUT)
        assert r.status_code == 422

        def chunks():  # a streamed (chunked) upload without Content-Length: refused once it passes the limit
            yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
            for _ in range(40):
                yield b"x" * 65536
            yield b"\r\n--b--\r\n"

        r = client.post(f"{server}/augment", content=chunks(), timeout=TIMEOUT,
                        headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
        r = client.post(f"{server}/augment?format=tiff", files=files, timeout=TIMEOUT)
        assert r.status_code == 422
        assert client.get(f"{server}/health", timeout=TIMEOUT).status_code == 200  # still serving


def test_overload_is_answered_429_and_nothing_is_lost(weights, phantom_data):
    aug = from_pretrained(weights, steps=20, batch_size=2, max_queue=4, max_wait_ms=0)
    with ThreadServer(create_app(aug, Limits(max_n=4))) as srv:
        def call(j):
            with httpx.Client() as client:
                return augment(srv.url, phantom_upload(phantom_data, j % 3), n=4, seed=j, client=client)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(16), timeout=600))
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 429} and codes.count(429) >= 1, codes
        refused = next(r for r in answers if r.status_code == 429)
        assert "queue full" in refused.json()["detail"] and int(refused.headers["Retry-After"]) >= 1
        assert all(len(r.json()["pairs"]) == 4 for r in answers if r.status_code == 200)
        stats = httpx.get(f"{srv.url}/metrics", params={"format": "json"}, timeout=TIMEOUT).json()
        assert stats["requests"]["refused"] == codes.count(429) and stats["requests"]["completed"] == codes.count(200)


def test_a_client_that_disconnects_has_its_request_cancelled_and_shutdown_answers_503(weights, phantom_data):
    aug = from_pretrained(weights, steps=50, batch_size=2, max_wait_ms=0)
    with ThreadServer(create_app(aug)) as srv:
        with httpx.Client() as client, pytest.raises(httpx.ReadTimeout):
            client.post(f"{srv.url}/augment", files=phantom_upload(phantom_data, 0), data={"n": "16"},
                        timeout=httpx.Timeout(60, read=0.05))  # 8 batches of 50 steps: still running when it leaves
        deadline = time.monotonic() + 30
        while aug.stats()["requests"]["cancelled"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert aug.stats()["requests"]["cancelled"] == 1
        aug.close()  # as on shutdown: the batcher stops taking requests
        assert httpx.get(f"{srv.url}/health", timeout=TIMEOUT).status_code == 503
        r = augment(srv.url, phantom_upload(phantom_data, 0), client=httpx.Client())
        assert r.status_code == 503 and "shutting down" in r.json()["detail"]
