"""`augpaint-fast serve` abused over loopback, as a stranger would: idle and slow sockets, 4096^2 uploads of one
colour, header injection through source_id, overload, no or a wrong token, kill -9 and a restart. /health must
answer through all of it.

One server subprocess (token set, small limits so the tests reach them) serves the module; the last test kills
it with SIGKILL and starts another on the same port. Every count, wait and HTTP call is bounded; the servers
are stopped by the fixture whatever happens.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from ._http import TIMEOUT, augment, encoded, free_port, phantom_upload, wait_healthy

pytestmark = pytest.mark.slow

TOKEN = "abuse-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_CONNECTIONS, HEADER_TIMEOUT_S = 4, 1.0
BUDGET_MB = 100  # a 4096^2 one-colour grey pair is estimated at ~35 MiB: two fit at once
RSS_BOUND_MB = 300  # six concurrent 4096^2 uploads may raise the server's peak RSS this much over its idle RSS


class Served:
    """The server subprocess; ``restart`` starts a fresh one on the same port."""

    def __init__(self, weights):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "augpaint_fast", "serve", "--weights", str(weights), "--port",
                    str(self.port), "--steps", "2", "--batch-size", "2", "--max-queue", "8", "--max-n", "4",
                    "--max-connections", str(MAX_CONNECTIONS), "--header-timeout", str(HEADER_TIMEOUT_S),
                    "--max-pixels", str(4096 * 4096), "--memory-budget-mb", str(BUDGET_MB), "--log-level", "error"]
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "AUGPAINT_FAST_TOKEN": TOKEN}
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_healthy(self.url, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc.stderr.close()

    def memory_kb(self, field: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


@pytest.fixture(scope="module")
def served(weights):
    server = Served(weights)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _post(url, files, query="", headers=AUTH, **fields):
    return augment(url, files, query, headers, **fields)


def _health(url) -> int:
    return httpx.get(f"{url}/health", timeout=5).status_code


def test_idle_and_slow_head_sockets_neither_stall_the_service_nor_stay_open(served, phantom_data):
    socks = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(2 * MAX_CONNECTIONS)]
    socks[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
    try:
        t0 = time.monotonic()
        assert _health(served.url) == 200
        r = _post(served.url, phantom_upload(phantom_data), n=2, seed=1)
        assert r.status_code == 200 and len(r.json()["pairs"]) == 2, r.text
        assert time.monotonic() - t0 < TIMEOUT
        for s in socks:  # closed by the server once the head deadline passed
            s.settimeout(HEADER_TIMEOUT_S + 20)
            assert s.recv(1) == b""
        assert time.monotonic() - t0 < HEADER_TIMEOUT_S + 30
    finally:
        for s in socks:
            s.close()
    assert _health(served.url) == 200


def test_bodies_that_stall_are_dropped_and_free_their_augment_slots(served, phantom_data):
    head = (f"POST /augment HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n").encode()
    socks = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        for s in socks:  # every /augment slot taken by a body that stops after its first bytes
            s.sendall(head)
        t0 = time.monotonic()
        assert _health(served.url) == 200
        for s in socks:
            s.settimeout(HEADER_TIMEOUT_S + 20)
            assert s.recv(1) == b""
        assert time.monotonic() - t0 < HEADER_TIMEOUT_S + 30
    finally:
        for s in socks:
            s.close()
    deadline, files = time.monotonic() + 10, phantom_upload(phantom_data)  # the app frees the slots on disconnect
    while (r := _post(served.url, files, n=1)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.status_code == 200, r.text


def test_six_concurrent_4096_uploads_stay_within_the_memory_bound(served):
    image, label = encoded(np.full((4096, 4096), 90, np.uint8)), encoded(np.ones((4096, 4096), np.uint8))
    files = {"image": ("big.png", image, "image/png"), "label": ("big-label.png", label, "image/png")}
    idle_rss_kb = served.memory_kb("VmRSS")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda seed: _post(served.url, files, n=1, seed=seed), range(6), timeout=300))
    peak_kb = served.memory_kb("VmHWM")
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and 200 in codes, [(r.status_code, r.text[:200]) for r in answers]
    details = [r.json()["detail"] for r in answers if r.status_code == 429]
    assert all("memory budget" in d or "being handled" in d for d in details), details
    print(f"idle RSS {idle_rss_kb >> 10} MiB, peak {peak_kb >> 10} MiB, answers {codes}")
    assert all(r.json()["image_size"] == 64 for r in answers if r.status_code == 200)
    assert (peak_kb - idle_rss_kb) / 1024 < RSS_BOUND_MB, (idle_rss_kb, peak_kb)
    assert _health(served.url) == 200


@pytest.mark.parametrize("source_id", ["x\x00y", "x\r\nSet-Cookie: a=b", "x\ny", "名前", "café",
                                       'x"; filename="evil.sh', "../etc", ".hidden", "a" * 129, "a b"])
def test_a_source_id_outside_the_allow_list_is_400_before_any_work(served, phantom_data, source_id):
    before = httpx.get(f"{served.url}/metrics", params={"format": "json"}, headers=AUTH, timeout=TIMEOUT).json()
    r = _post(served.url, phantom_upload(phantom_data), query="?format=zip", source_id=source_id, n=1)
    assert r.status_code == 400 and "not usable as a file stem" in r.json()["detail"], r.text
    after = httpx.get(f"{served.url}/metrics", params={"format": "json"}, headers=AUTH, timeout=TIMEOUT).json()
    assert after["requests"]["submitted"] == before["requests"]["submitted"]  # nothing was generated


def test_a_valid_source_id_names_the_zip_by_rfc_6266(served, phantom_data):
    r = _post(served.url, phantom_upload(phantom_data), query="?format=zip", source_id="case-01.v2_A", n=1)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == \
        "attachment; filename=\"case-01.v2_A.zip\"; filename*=UTF-8''case-01.v2_A.zip"


def test_overload_is_429_with_a_reason_and_health_answers_meanwhile(served, phantom_data):
    files = phantom_upload(phantom_data, 1)
    with ThreadPoolExecutor(12) as pool:
        pending = [pool.submit(_post, served.url, files, n=4, seed=j) for j in range(12)]
        healths = [_health(served.url) for _ in range(3)]
        answers = [f.result(timeout=300) for f in pending]
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 1, codes
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert any(words in r.json()["detail"] for words in ("queue full", "being handled", "memory budget"))
    assert healths == [200, 200, 200]
    text = httpx.get(f"{served.url}/metrics", headers=AUTH, timeout=TIMEOUT).text
    refused = sum(float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("augpaint_refusals_total{") and ("too_many_requests" in line or
                                                                      "queue_full" in line))
    assert refused >= codes.count(429)


def test_without_the_token_only_health_answers(served, phantom_data):
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        r = _post(served.url, phantom_upload(phantom_data), headers=headers, n=1)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (headers, r.text)
        assert httpx.get(f"{served.url}/metrics", headers=headers, timeout=TIMEOUT).status_code == 401
    for path in ("/docs", "/openapi.json"):  # off when a token is set
        assert httpx.get(f"{served.url}{path}", headers=AUTH, timeout=TIMEOUT).status_code == 404
    assert httpx.get(f"{served.url}/metrics", headers=AUTH, timeout=TIMEOUT).status_code == 200
    assert 'augpaint_refusals_total{reason="unauthorized"}' in \
        httpx.get(f"{served.url}/metrics", headers=AUTH, timeout=TIMEOUT).text
    assert _health(served.url) == 200


def test_kill_9_then_restart_serves_the_same_pairs(served, phantom_data):
    before = _post(served.url, phantom_upload(phantom_data, 2), n=2, seed=9, source_id="phantom_0002")
    assert before.status_code == 200
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(30)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.url}/health", timeout=5)
    served.stop()
    served.start()  # same port, fresh process
    assert _health(served.url) == 200
    after = _post(served.url, phantom_upload(phantom_data, 2), n=2, seed=9, source_id="phantom_0002")
    assert after.status_code == 200
    assert [p["image_png"] for p in after.json()["pairs"]] == [p["image_png"] for p in before.json()["pairs"]]
