"""What the service tests share: a free loopback port, waiting for /health, an array encoded as an upload, a
phantom pair as the multipart files of ``POST /augment``, that POST, and the app served from a thread of this
process. Every HTTP call is bounded by ``TIMEOUT``."""
from __future__ import annotations

import io
import socket
import threading
import time

import httpx
from PIL import Image

from augpaint_fast.embed.service.server import build_server

TIMEOUT = 60.0  # seconds any single HTTP call may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc=None, seconds: float = 120.0) -> None:
    """Return once ``url``/health answers 200; raise if the server process ``proc`` exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy within {seconds} s")


def encoded(array, fmt: str = "PNG", **kw) -> bytes:
    """``array`` (H x W grey or H x W x 3 uint8) as the bytes of an image file in ``fmt`` (PIL's save options)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def phantom_upload(phantom_data, i: int = 0) -> dict:
    """The ``files`` of ``POST /augment`` for phantom ``i`` of ``phantom_data``: its image and its label PNG."""
    image = (phantom_data / "images" / f"phantom_{i:04d}.png").read_bytes()
    label = (phantom_data / "labels" / f"phantom_{i:04d}.png").read_bytes()
    return {"image": ("image.png", image, "image/png"), "label": ("label.png", label, "image/png")}


def augment(url: str, files: dict, query: str = "", headers: dict | None = None, client=httpx, **fields):
    """``POST url/augment[query]`` with ``files`` and the form ``fields`` (as strings), through ``client`` (an
    ``httpx.Client``, or one-off requests by default)."""
    return client.post(f"{url}/augment{query}", files=files, data={k: str(v) for k, v in fields.items()},
                       headers=headers, timeout=TIMEOUT)


class ThreadServer:
    """``app`` served by :func:`build_server` (the server `serve` runs) on a free port, from a thread of this
    process (real socket, real HTTP): ``with ThreadServer(app) as srv: httpx.get(srv.url + ...)``."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = build_server(app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
