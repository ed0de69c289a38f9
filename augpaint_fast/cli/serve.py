"""``serve``: load the weights once, then serve ``embed.service.app`` under uvicorn.

Every argument, the token and the host are checked before the weights are loaded, and the weights (checked
too) before the server starts, so a bad setting or weights folder is one error line and ``GET /health``
answers 200 from the first request on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..assets import SHIPPED_WEIGHTS
from ..embed.service.command import MIN_TOKEN_CHARS, TOKEN_ENV
from ..errors import AugPaintError
from .command import Command
from .options import (add_engine_options, add_sampling_options, add_speed_options, add_workers_option,
                      engine_options, workers_from)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS, help="weights folder (default: shipped tiny)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1); any other than loopback needs a token or "
                        "--insecure")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s = p.add_argument_group("sampling", "fixed for the server's lifetime; seed, n and source id come per request")
    add_sampling_options(s, "steps", "eta", "mask", "margin", "flip", "paste_back", "max_classes")
    a = p.add_argument_group(
        "access", f"a shared secret: clients send 'Authorization: Bearer <token>' to every path but /health "
                  f"(401 otherwise); the token comes from --token-file or the environment variable {TOKEN_ENV} "
                  f"(at least {MIN_TOKEN_CHARS} printable ASCII characters; the file wins)")
    a.add_argument("--token-file", type=Path, help=f"file holding the token (default: ${TOKEN_ENV}, else none)")
    a.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without a token (anyone who reaches the port may use it)")
    a.add_argument("--no-docs", action="store_true",
                   help="do not serve /docs, /redoc and /openapi.json (they are off anyway when a token is set)")
    _limit_arguments(p.add_argument_group("batching and limits"))
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_engine_options(p)
    add_speed_options(p)


def _limit_arguments(b) -> None:
    b.add_argument("--batch-size", type=int, default=8, help="engine batch requests are packed into (default 8)")
    add_workers_option(b, "serve batches in parallel")
    # 100 ms, not 10: with several engines an idle one otherwise takes a part-filled batch as soon as it frees
    # up (8 clients x 2 samples, 2 workers: batch fill 0.64 and 76% of offline at 10 ms, 1.00 and 109% at 100 ms,
    # BENCHMARKS.md "Every core busy"), and 100 ms is small beside one 50-step batch (~1.5 s on 2 CPU cores)
    b.add_argument("--max-wait-ms", type=float, default=100.0,
                   help="how long a batch waits to fill before it runs (default 100)")
    b.add_argument("--max-queue", type=int, default=256,
                   help="samples that may wait; more is answered 429 (default 256)")
    b.add_argument("--max-n", type=int, default=64, help="samples one request may ask for (default 64)")
    b.add_argument("--max-upload-mb", type=float, default=16.0, help="request body limit in MiB (default 16)")
    b.add_argument("--max-pixels", type=int, default=None,
                   help="pixels per uploaded image, checked from its header before decoding (default: 8x the "
                        "model's, 32768 for a 64x64 model); larger uploads are reduced while decoding")
    b.add_argument("--memory-budget-mb", type=float, default=1024.0,
                   help="MiB that the uploads being decoded may take together, estimated from their headers; "
                        "an upload that does not fit now is answered 429 (default 1024)")
    b.add_argument("--request-timeout", type=float, default=300.0,
                   help="seconds a request may wait for its pairs before a 503 (default 300)")
    b.add_argument("--header-timeout", type=float, default=5.0,
                   help="seconds a connection may take to send its request head (after opening or after its "
                        "previous response), and may stay silent within a request body, before it is closed: idle "
                        "or stalled sockets cannot pile up (default 5)")
    b.add_argument("--max-connections", type=int, default=64,
                   help="POST /augment requests handled at once (reading, decoding or waiting); more are answered "
                        "429 at once. /health is never limited and idle connections do not count (default 64)")


def _check_limits(args) -> None:
    for flag, value, low in (("--port", args.port, 0), ("--max-n", args.max_n, 1), ("--max-queue", args.max_queue, 1),
                             ("--max-connections", args.max_connections, 1)):
        if value < low:
            raise AugPaintError(f"{flag} must be >= {low}, got {value}")
    if args.max_pixels is not None and args.max_pixels < 4:
        raise AugPaintError(f"--max-pixels must be >= 4, got {args.max_pixels}")
    for flag, value in (("--max-upload-mb", args.max_upload_mb), ("--request-timeout", args.request_timeout),
                        ("--header-timeout", args.header_timeout), ("--memory-budget-mb", args.memory_budget_mb)):
        if not value > 0 or value == float("inf"):
            raise AugPaintError(f"{flag} must be a number > 0, got {value}")
    if not 0 <= args.max_wait_ms < float("inf"):
        raise AugPaintError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")


def _serve(args) -> None:
    from ..embed.api import from_pretrained
    from ..embed.service.command import check_exposure, read_token, run_server, service_parts

    Limits, create_app, build_server = service_parts()
    _check_limits(args)
    token = read_token(args.token_file)
    check_exposure(args.host, token, args.insecure)
    workers = workers_from(args)
    if workers == 1:  # the threads of each worker: one engine serves the bytes of N
        import torch

        from ..job.workers import THREADS

        torch.set_num_threads(THREADS)
    aug = from_pretrained(args.weights, args.engine, steps=args.steps, eta=args.eta, mask_mode=args.mask,
                          margin=args.margin, flip=args.flip, batch_size=args.batch_size, paste_back=args.paste_back,
                          max_classes=args.max_classes, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                          workers=workers, **engine_options(args))
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_pixels=args.max_pixels,
                    max_n=args.max_n, request_timeout_s=args.request_timeout, max_active=args.max_connections,
                    memory_budget_bytes=int(args.memory_budget_mb * (1 << 20)))
    app = create_app(aug, limits, token=token, docs=False if args.no_docs else None)
    print(f"augpaint-fast: serving {args.weights} ({aug.image_size}x{aug.image_size}, {args.steps} steps, batch "
          f"{args.batch_size}, engine {args.engine}, {workers} worker(s)) on http://{args.host}:{args.port}: "
          f"POST /augment, GET /health, GET /metrics ({'token required' if token else 'no token'})", flush=True)
    run_server(build_server(app, args.host, args.port, header_timeout=args.header_timeout, log_level=args.log_level))


SERVE = Command("serve", "serve AugPaint over HTTP (POST /augment, GET /health, GET /metrics)", _arguments, _serve)
