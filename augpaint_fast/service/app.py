"""The HTTP API of augpaint-fast, on FastAPI, over one loaded :class:`~augpaint_fast.api.AugPaint`.

``POST /augment`` — ``multipart/form-data`` with files ``image`` and ``label`` (PNG; JPEG, TIFF and BMP images
are read too, by the same rules as the sampling job's files) and fields ``n`` (1 .. ``max_n``, default 4),
``seed`` (0 .. 2**32 - 1, default 0), optional ``source_id`` (the job's file stem, to reproduce its pairs) and
``start`` (the first k, default 0). The answer (``?format=json``, the default)::

    {"source_id": "mem-…", "seed": 0, "n": 2, "image_size": 64, "seconds": 0.41, "settings": {...},
     "pairs": [{"name": "mem-…_0", "k": 0, "uid": 2213…, "flipped": [false, false],
                "image_png": "<base64>", "label_png": "<base64>"}, ...]}

or, with ``?format=zip``, a zip in the sampling job's layout (``images/<name>.png``, ``labels/<name>.png``,
``manifest.jsonl``). The PNG bytes equal the job's for the same source id, seed, k, settings and batch size;
without ``source_id`` the id is derived from the decoded pixels (see ``augpaint_fast.api``).

``GET /health`` — 200 ``{"status": "ok", ...}`` when the engine is loaded and its batcher runs, else 503.
``GET /metrics`` — Prometheus text (``?format=json``: JSON): queue depth and capacity, samples in flight,
batches, mean batch fill, mean batch seconds, samples/s over the last minute, requests by outcome.

Errors are JSON ``{"detail": "..."}``: 400 unreadable, mismatched or empty uploads; 413 a body over
``max_upload_bytes`` or an image over ``max_pixels``; 422 missing or out-of-range fields; 429 the queue is
full (with ``Retry-After``); 503 shutting down or timed out (the request is then cancelled); 500 generation
failed. A client that disconnects has its request cancelled.
"""
# No `from __future__ import annotations` here: FastAPI evaluates the endpoint's annotations, and they use the
# closure variable `limits`, which string annotations could not see.
import asyncio
import base64
import io
import json
import math
import time
import zipfile
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..api import AugmentedPair, AugPaint
from ..batcher import BatcherClosed, QueueFull
from ..data.imageio import TooManyPixels, decode_image, decode_label
from ..errors import AugPaintError

POLL_S = 0.25  # how often a waiting request checks for a disconnected client


@dataclass(frozen=True)
class Limits:
    """What one request may ask: body bytes, pixels per image, samples, seconds."""

    max_upload_bytes: int = 16 << 20
    max_pixels: int = 4096 * 4096
    max_n: int = 64
    request_timeout_s: float = 300.0


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, by its Content-Length before reading
    it, else as soon as the streamed body passes the limit (whatever the app then makes of the aborted body,
    e.g. FastAPI's 400 for an unparsable form, is replaced by the 413)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _send_json(send, 400, "invalid Content-Length header")
            if int(length) > self.max_bytes:
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
                await _send_json(send, 413, self._message(received))

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if answered:
                raise
            await _send_json(send, 413, self._message(received))

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes or more exceeds the limit of {self.max_bytes} bytes"


class _BodyTooLarge(Exception):
    pass


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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


def _prometheus(stats: dict) -> str:
    gauges = {"queue_depth": "samples waiting in the queue", "queue_capacity": "queue capacity in samples",
              "in_flight": "samples in the running batch", "batch_size": "engine batch size",
              "mean_batch_fill": "mean fraction of each engine batch holding requested samples",
              "mean_batch_seconds": "mean seconds per engine batch",
              "samples_per_s": "samples per second over the last minute"}
    counters = {"batches": "engine batches run", "samples": "samples generated"}
    out = []
    for key, help_ in gauges.items():
        out += [f"# HELP augpaint_{key} {help_}", f"# TYPE augpaint_{key} gauge", f"augpaint_{key} {stats[key]}"]
    for key, help_ in counters.items():
        out += [f"# HELP augpaint_{key}_total {help_}", f"# TYPE augpaint_{key}_total counter",
                f"augpaint_{key}_total {stats[key]}"]
    out += ["# HELP augpaint_requests_total requests by outcome", "# TYPE augpaint_requests_total counter"]
    out += [f'augpaint_requests_total{{outcome="{k}"}} {v}' for k, v in stats["requests"].items()]
    return "\n".join(out) + "\n"


def create_app(aug: AugPaint, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI app serving ``aug`` (already loaded); closing it on shutdown cancels what is queued."""

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await run_in_threadpool(aug.close, True)

    app = FastAPI(title="augpaint-fast", summary="AugPaint image/label pairs over HTTP", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes)

    @app.get("/health")
    def health():
        stats = aug.batcher.stats()
        body = {"status": "ok" if stats["running"] else "unavailable", "image_size": aug.image_size,
                "batch_size": aug.batch_size, "queue_depth": stats["queue_depth"]}
        return JSONResponse(body, status_code=200 if stats["running"] else 503)

    @app.get("/metrics")
    def metrics(format: Annotated[str, Query(pattern="^(prometheus|json)$")] = "prometheus"):
        stats = aug.batcher.stats()
        if format == "json":
            return {**stats, "settings": aug.settings}
        return PlainTextResponse(_prometheus(stats), media_type="text/plain; version=0.0.4")

    @app.post("/augment")
    async def augment(request: Request, image: Annotated[UploadFile, File(description="image (PNG)")],
                      label: Annotated[UploadFile, File(description="class map (PNG), same size")],
                      n: Annotated[int, Form(ge=1, le=limits.max_n)] = 4,
                      seed: Annotated[int, Form(ge=0, le=0xFFFFFFFF)] = 0,
                      source_id: Annotated[str | None, Form(max_length=200)] = None,
                      start: Annotated[int, Form(ge=0)] = 0,
                      format: Annotated[str, Query(pattern="^(json|zip)$")] = "json"):
        t0 = time.perf_counter()
        image_bytes, label_bytes = await image.read(), await label.read()

        def prepare():
            img = decode_image(image_bytes, "image", limits.max_pixels)
            lab = decode_label(label_bytes, aug.max_classes, "label", limits.max_pixels)
            return aug.source_from_arrays(img, lab, source_id)

        try:
            source = await run_in_threadpool(prepare)
            future = aug.submit_source(source, n, seed, start=start)
        except TooManyPixels as exc:
            raise HTTPException(413, str(exc)) from None
        except QueueFull as exc:
            stats = aug.batcher.stats()
            retry = max(1, math.ceil(stats["queue_depth"] / aug.batch_size * max(stats["mean_batch_seconds"], 0.1)))
            raise HTTPException(429, str(exc), headers={"Retry-After": str(retry)}) from None
        except BatcherClosed as exc:
            raise HTTPException(503, str(exc)) from None
        except AugPaintError as exc:
            raise HTTPException(400, str(exc)) from None

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
                raise HTTPException(503, f"no result within {limits.request_timeout_s:g} s; the request was "
                                         f"cancelled (the service is overloaded)")
        try:
            pairs = waiting.result()
        except asyncio.CancelledError:
            raise HTTPException(503, "the request was cancelled (the service is shutting down)") from None
        except AugPaintError as exc:
            raise HTTPException(500, f"generation failed: {exc}") from None
        if format == "zip":
            data = await run_in_threadpool(_pairs_zip, aug, pairs)
            return Response(data, media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{pairs[0].source_id}.zip"'})
        return await run_in_threadpool(_pairs_json, aug, pairs, time.perf_counter() - t0)

    return app
