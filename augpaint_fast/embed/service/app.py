"""The HTTP API of augpaint-fast, on FastAPI, over one loaded :class:`~augpaint_fast.embed.api.AugPaint`.

``POST /augment`` — ``multipart/form-data`` with files ``image`` and ``label`` (PNG; JPEG, TIFF and BMP images
are read too, by the same rules as the sampling job's files) and fields ``n`` (1 .. ``max_n``, default 4),
``seed`` (0 .. 2**32 - 1, default 0), optional ``source_id`` (the job's file stem, to reproduce its pairs:
1 to 128 of ``A-Z a-z 0-9 . _ -``, not starting with a dot) and ``start`` (the first k, default 0). The answer
(``?format=json``, the default)::

    {"source_id": "mem-…", "seed": 0, "n": 2, "image_size": 64, "seconds": 0.41, "settings": {...},
     "pairs": [{"name": "mem-…_0", "k": 0, "uid": 2213…, "flipped": [false, false],
                "image_png": "<base64>", "label_png": "<base64>"}, ...]}

or, with ``?format=zip``, a zip in the sampling job's layout (``images/<name>.png``, ``labels/<name>.png``,
``manifest.jsonl``), named by an RFC 6266 ``Content-Disposition``. The PNG bytes equal the job's for the same
source id, seed, k, settings and batch size; without ``source_id`` the id is derived from the decoded pixels
(see ``augpaint_fast.embed.api``).

**Uploads and memory.** An image is checked against ``max_pixels`` (default: 8x the model's pixels) from its
header, before anything is decoded. An upload whose short side is at least 4x the model's size is reduced while
it is decoded (``data.imageio.decode_image``: by an integer factor, to a short side of 2x the model's or more,
before any float copy), so it costs about its decoded 8-bit pixels; such uploads (only possible with a raised
``max_pixels``) are not byte-identical to the job, which resizes the full image. Each request's decoding is
admitted against ``memory_budget_bytes`` by an estimate from the headers (:func:`estimated_bytes`); what does
not fit now is a 429.

**Access.** With a ``token``, every path but ``/health`` needs ``Authorization: Bearer <token>`` (compared in
constant time; 401 otherwise), and ``/docs``, ``/redoc`` and ``/openapi.json`` are off unless ``docs=True``.
At most ``max_active`` ``/augment`` requests are handled at once (reading, decoding or waiting for their pairs);
more are answered 429 at once, and ``/health`` is never limited.

``GET /health`` — 200 ``{"status": "ok", ...}`` when the engine is loaded and its batcher runs, else 503.
``GET /metrics`` — Prometheus text from ``prometheus_client`` (a registry per app): ``/augment`` latency and
engine batch fill and seconds (histograms), queue depth, capacity and samples in flight (gauges), batches,
samples, requests by outcome and refusals by reason (counters). ``?format=json``: the batcher's stats as JSON.

Errors are JSON ``{"detail": "..."}``: 400 unreadable, mismatched or empty uploads or a bad ``source_id``;
401 a missing or wrong token; 413 a body over ``max_upload_bytes``, an image over ``max_pixels`` or an upload
larger than the whole memory budget; 422 missing or out-of-range fields; 429 the queue is full, too many
requests at once or the memory budget is taken (with ``Retry-After``); 503 shutting down or timed out (the
request is then cancelled); 500 generation failed. A client that disconnects has its request cancelled.
"""
# No `from __future__ import annotations` here: FastAPI evaluates the endpoint's annotations, and they use the
# closure variable `limits`, which string annotations could not see.
import asyncio
import base64
import hmac
import io
import json
import math
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import Annotated, Callable
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..api import AugmentedPair, AugPaint
from ..batcher import BatcherClosed, QueueFull
from ...data.imageio import TooManyPixels, decode_image, decode_label, decoded_bytes_per_pixel, image_header
from ...errors import AugPaintError

POLL_S = 0.25  # how often a waiting request checks for a disconnected client
MODEL_PIXELS_FACTOR = 8  # the default max_pixels: this many times the model's pixels
SOURCE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # a safe file stem; fullmatch
PUBLIC_PATHS = ("/health",)  # answered without a token
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


@dataclass(frozen=True)
class Limits:
    """What one request may ask (body bytes, pixels per image, samples, seconds) and what all of them together
    may hold (``/augment`` requests at once, estimated decoding memory). ``max_pixels=None``: 8x the model's."""

    max_upload_bytes: int = 16 << 20
    max_pixels: int | None = None
    max_n: int = 64
    request_timeout_s: float = 300.0
    max_active: int = 64
    memory_budget_bytes: int = 1 << 30


def estimated_bytes(image: tuple[int, int, str], label: tuple[int, int, str], model_size: int) -> int:
    """Peak bytes to decode and prepare an upload pair from its headers ``(width, height, PIL mode)``: the decoded
    image and label at full size (``decoded_bytes_per_pixel``) and, at the size the image is reduced to
    (``decode_image(min_side=2 * model_size)``), its float copies and the label's int64 checks (96 bytes)."""
    width, height, mode = image
    factor = max(1, min(width, height) // (2 * model_size))
    reduced = math.ceil(width / factor) * math.ceil(height / factor)
    return (width * height * decoded_bytes_per_pixel(mode) + label[0] * label[1] * decoded_bytes_per_pixel(label[2])
            + 96 * reduced)


class MemoryBudget:
    """A counter of estimated bytes in use, shared by the request threads; ``take`` never waits."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.total:
                return False
            self.used += nbytes
            return True

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes


class Refused(AugPaintError):
    """A request refused before any work: HTTP ``status`` with ``reason`` (the metrics label) and headers."""

    def __init__(self, status: int, reason: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.reason, self.headers = status, reason, headers


class ServiceMetrics:
    """The app's Prometheus metrics, in a registry of its own (several apps in one process do not clash)."""

    def __init__(self, aug: AugPaint):
        self.registry = CollectorRegistry()
        self.latency = Histogram("augpaint_augment_seconds", "seconds from an /augment request to its answer (200)",
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
                                 registry=self.registry)
        self.batch_fill = Histogram("augpaint_batch_fill", "fraction of each engine batch holding requested samples",
                                    buckets=tuple(i / 8 for i in range(1, 9)), registry=self.registry)
        self.batch_seconds = Histogram("augpaint_batch_seconds", "seconds per engine batch",
                                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                       registry=self.registry)
        self.refusals = Counter("augpaint_refusals", "requests refused before generation, by reason", ["reason"],
                                registry=self.registry)
        self.registry.register(_BatcherCollector(aug))
        batch_size = aug.batch_size

        def on_batch(items: int, seconds: float) -> None:
            self.batch_fill.observe(items / batch_size)
            self.batch_seconds.observe(seconds)

        aug.batcher.add_batch_listener(on_batch)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _BatcherCollector:
    """The batcher's queue gauges and counters, read at each scrape."""

    def __init__(self, aug: AugPaint):
        self.aug = aug

    def collect(self):
        stats = self.aug.batcher.stats()
        for key, help_ in (("queue_depth", "samples waiting in the queue"), ("queue_capacity", "queue capacity in "
                           "samples"), ("in_flight", "samples in the running batches"), ("batch_size", "engine batch "
                           "size"), ("workers", "engines serving batches in parallel"), ("samples_per_s", "samples per second over the last minute")):
            yield GaugeMetricFamily(f"augpaint_{key}", help_, value=stats[key])
        yield CounterMetricFamily("augpaint_batches", "engine batches run", value=stats["batches"])
        yield CounterMetricFamily("augpaint_samples", "samples generated", value=stats["samples"])
        requests = CounterMetricFamily("augpaint_requests", "requests by outcome", labels=["outcome"])
        for outcome, count in stats["requests"].items():
            requests.add_metric([outcome], count)
        yield requests


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, by its Content-Length before reading
    it, else as soon as the streamed body passes the limit (whatever the app then makes of the aborted body,
    e.g. FastAPI's 400 for an unparsable form, is replaced by the 413)."""

    def __init__(self, app, max_bytes: int, on_refuse: Callable[[str], None] = lambda reason: None):
        self.app, self.max_bytes, self.on_refuse = app, max_bytes, on_refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _send_json(send, 400, "invalid Content-Length header")
            if int(length) > self.max_bytes:
                self.on_refuse("body_too_large")
                return await _send_json(send, 413, self._message(int(length)))
        received, too_large, answered = 0, False, False

        async def limited_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message):
            nonlocal answered
            if not too_large:
                answered = answered or message["type"] == "http.response.start"
                return await send(message)
            if message["type"] == "http.response.start" and not answered:  # the app's answer to the cut body
                answered = True
                self.on_refuse("body_too_large")
                await _send_json(send, 413, self._message(received))

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if answered:
                raise
            self.on_refuse("body_too_large")
            await _send_json(send, 413, self._message(received))

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes or more exceeds the limit of {self.max_bytes} bytes"


class _BodyTooLarge(Exception):
    pass


class ActiveLimit:
    """ASGI middleware: at most ``max_active`` requests to ``path`` at once, counted from their head to their
    answer; one more is answered 429 before its body is read. Other paths (``/health``) are never limited."""

    def __init__(self, app, max_active: int, path: str, on_refuse: Callable[[str], None]):
        self.app, self.max_active, self.path, self.on_refuse = app, max_active, path, on_refuse
        self.active = 0  # only touched on the event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        if self.active >= self.max_active:
            self.on_refuse("too_many_requests")
            return await _send_json(send, 429, f"{self.active} requests are being handled, the limit; retry later",
                                    {"retry-after": "1"})
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class BearerAuth:
    """ASGI middleware: every path but ``public`` needs ``Authorization: Bearer <token>`` (constant-time
    comparison); else 401 before anything of the request is read."""

    def __init__(self, app, token: str, public: tuple[str, ...], on_refuse: Callable[[str], None]):
        self.app, self.expected, self.public, self.on_refuse = app, f"Bearer {token}".encode(), public, on_refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.public:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            self.on_refuse("unauthorized")
            detail = "a valid token is needed: send the header 'Authorization: Bearer <token>'"
            return await _send_json(send, 401, detail, {"www-authenticate": 'Bearer realm="augpaint-fast"'})
        return await self.app(scope, receive, send)


async def _send_json(send, status: int, detail: str, headers: dict | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


def check_source_id(source_id: str) -> None:
    """Refuse (400) an id outside ``SOURCE_ID``: it names files and reaches a response header."""
    if not SOURCE_ID.fullmatch(source_id):
        raise Refused(400, "bad_input", f"source_id {source_id[:140]!r} is not usable as a file stem: use 1 to 128 "
                                        f"of A-Z a-z 0-9 . _ - (not starting with a dot)")


def attachment(filename: str) -> str:
    """An RFC 6266 ``Content-Disposition`` for ``filename``: an ASCII ``filename`` (other characters as ``_``)
    and the exact name as RFC 5987 ``filename*``."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _pairs_json(aug: AugPaint, pairs: list[AugmentedPair], seconds: float) -> dict:
    first = pairs[0]
    return {"source_id": first.source_id, "seed": first.seed, "n": len(pairs), "image_size": aug.image_size,
            "seconds": round(seconds, 4), "settings": aug.settings,
            "pairs": [{"name": p.name, "k": p.k, "uid": p.uid, "flipped": list(p.flipped),
                       **{key: base64.b64encode(data).decode() for key, data in zip(("image_png", "label_png"),
                                                                                      p.png())}}
                      for p in pairs]}


def _pairs_zip(aug: AugPaint, pairs: list[AugmentedPair]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        lines = []
        for p in pairs:
            image_png, label_png = p.png()
            zf.writestr(f"images/{p.name}.png", image_png)
            zf.writestr(f"labels/{p.name}.png", label_png)
            lines.append(json.dumps({"name": p.name, "image": f"images/{p.name}.png", "label": f"labels/{p.name}.png",
                                     "source": p.source_id, "k": p.k, "uid": p.uid, "seed": p.seed,
                                     "flipped": list(p.flipped), **aug.settings}))
        zf.writestr("manifest.jsonl", "\n".join(lines) + "\n")
    return buf.getvalue()


def _prepare(aug: AugPaint, budget: MemoryBudget, max_pixels: int, image_bytes: bytes, label_bytes: bytes,
             source_id: str | None):
    """Check the headers (sizes, pixels, memory), then decode the pair, reduced for the model, into a source."""
    image_hdr, label_hdr = image_header(image_bytes, "image"), image_header(label_bytes, "label")
    for name, (width, height, _) in (("image", image_hdr), ("label", label_hdr)):
        if width * height > max_pixels:
            raise TooManyPixels(f"{name} is {width}x{height} pixels, more than the limit of {max_pixels}")
    if image_hdr[:2] != label_hdr[:2]:
        raise AugPaintError(f"the image is {image_hdr[1]}x{image_hdr[0]} but its label is {label_hdr[1]}x"
                            f"{label_hdr[0]}; they must be the same size")
    need = estimated_bytes(image_hdr, label_hdr, aug.image_size)
    if need > budget.total:
        raise Refused(413, "memory_budget", f"the upload needs an estimated {need >> 20} MiB to decode, more than "
                                            f"the whole memory budget of {budget.total >> 20} MiB")
    if not budget.take(need):
        raise Refused(429, "memory_budget", f"the memory budget is taken by other uploads ({budget.used >> 20} of "
                                            f"{budget.total >> 20} MiB); retry later", {"Retry-After": "1"})
    try:
        img = decode_image(image_bytes, "image", max_pixels, min_side=2 * aug.image_size)
        lab = decode_label(label_bytes, aug.max_classes, "label", max_pixels, size=img.shape[1:])
        return aug.source_from_arrays(img, lab, source_id)
    finally:
        budget.give_back(need)


def create_app(aug: AugPaint, limits: Limits = Limits(), *, token: str | None = None,
               docs: bool | None = None) -> FastAPI:
    """The FastAPI app serving ``aug`` (already loaded); closing it on shutdown cancels what is queued.

    ``token``: the shared secret every path but ``/health`` needs; ``docs``: serve ``/docs`` and
    ``/openapi.json`` (default: only without a token)."""

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await run_in_threadpool(aug.close, True)

    docs = token is None if docs is None else docs
    app = FastAPI(title="augpaint-fast", summary="AugPaint image/label pairs over HTTP", lifespan=lifespan,
                  **({} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}))
    metrics = ServiceMetrics(aug)
    budget = MemoryBudget(limits.memory_budget_bytes)
    max_pixels = limits.max_pixels or MODEL_PIXELS_FACTOR * aug.image_size ** 2
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes, on_refuse=metrics.refused)
    app.add_middleware(ActiveLimit, max_active=limits.max_active, path="/augment", on_refuse=metrics.refused)
    if token is not None:
        app.add_middleware(BearerAuth, token=token, public=PUBLIC_PATHS + (DOCS_PATHS if docs else ()),
                           on_refuse=metrics.refused)

    def refuse(status: int, reason: str, detail: str, headers: dict | None = None) -> HTTPException:
        metrics.refused(reason)
        return HTTPException(status, detail, headers=headers)

    @app.get("/health")
    def health():
        stats = aug.batcher.stats()
        body = {"status": "ok" if stats["running"] else "unavailable", "image_size": aug.image_size,
                "batch_size": aug.batch_size, "queue_depth": stats["queue_depth"]}
        return JSONResponse(body, status_code=200 if stats["running"] else 503)

    @app.get("/metrics")
    def get_metrics(format: Annotated[str, Query(pattern="^(prometheus|json)$")] = "prometheus"):
        if format == "json":
            return {**aug.batcher.stats(), "settings": aug.settings}
        return PlainTextResponse(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/augment")
    async def augment(request: Request, image: Annotated[UploadFile, File(description="image (PNG)")],
                      label: Annotated[UploadFile, File(description="class map (PNG), same size")],
                      n: Annotated[int, Form(ge=1, le=limits.max_n)] = 4,
                      seed: Annotated[int, Form(ge=0, le=0xFFFFFFFF)] = 0,
                      source_id: Annotated[str | None, Form(description="1-128 of A-Z a-z 0-9 . _ -")] = None,
                      start: Annotated[int, Form(ge=0)] = 0,
                      format: Annotated[str, Query(pattern="^(json|zip)$")] = "json"):
        t0 = time.perf_counter()
        try:
            if source_id is not None:
                check_source_id(source_id)
            image_bytes, label_bytes = await image.read(), await label.read()
            source = await run_in_threadpool(_prepare, aug, budget, max_pixels, image_bytes, label_bytes, source_id)
            future = aug.submit_source(source, n, seed, start=start)
        except Refused as exc:
            raise refuse(exc.status, exc.reason, str(exc), exc.headers) from None
        except TooManyPixels as exc:
            raise refuse(413, "too_many_pixels", str(exc)) from None
        except QueueFull as exc:
            stats = aug.batcher.stats()
            retry = max(1, math.ceil(stats["queue_depth"] / aug.batch_size * max(stats["mean_batch_seconds"], 0.1)))
            raise refuse(429, "queue_full", str(exc), {"Retry-After": str(retry)}) from None
        except BatcherClosed as exc:
            raise refuse(503, "shutting_down", str(exc)) from None
        except AugPaintError as exc:
            raise refuse(400, "bad_input", str(exc)) from None

        waiting = asyncio.wrap_future(future)
        deadline = time.monotonic() + limits.request_timeout_s
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=POLL_S)
            if waiting.done():
                break
            if await request.is_disconnected():
                future.cancel()
                return Response(status_code=499)  # nobody is listening; nothing more to do
            if time.monotonic() > deadline:
                future.cancel()
                raise refuse(503, "timeout", f"no result within {limits.request_timeout_s:g} s; the request was "
                                             f"cancelled (the service is overloaded)")
        try:
            pairs = waiting.result()
        except asyncio.CancelledError:
            raise refuse(503, "shutting_down", "the request was cancelled (the service is shutting down)") from None
        except AugPaintError as exc:
            raise HTTPException(500, f"generation failed: {exc}") from None
        if format == "zip":
            data = await run_in_threadpool(_pairs_zip, aug, pairs)
            metrics.latency.observe(time.perf_counter() - t0)
            return Response(data, media_type="application/zip",
                            headers={"Content-Disposition": attachment(f"{pairs[0].source_id}.zip")})
        body = await run_in_threadpool(_pairs_json, aug, pairs, time.perf_counter() - t0)
        metrics.latency.observe(time.perf_counter() - t0)
        return body

    return app
