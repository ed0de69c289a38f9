"""``augpaint-fast serve``: load the weights once, then serve ``service.app`` under uvicorn.

The weights are loaded (and checked) before the server starts, so a bad weights folder is one error line and
``GET /health`` answers 200 from the first request on. One process drives one engine; scale out with more
processes (one per GPU) behind a load balancer.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_serve_args(p: argparse.ArgumentParser, shipped_weights: Path) -> None:
    p.add_argument("--weights", type=Path, default=shipped_weights, help="weights folder (default: shipped tiny)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s = p.add_argument_group("sampling", "fixed for the server's lifetime; seed, n and source id come per request")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    s.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1)")
    s.add_argument("--mask", default="box", help="known region: box (default), component or label")
    s.add_argument("--margin", type=int, default=0, help="pixels added around each box (default 0)")
    s.add_argument("--flip", default="none", help="none, horizontal, vertical, both or random")
    s.add_argument("--paste-back", action="store_true", help="paste the source's pixels into the known region")
    s.add_argument("--max-classes", type=int, default=16, help="refuse labels with more classes than this")
    b = p.add_argument_group("batching and limits")
    b.add_argument("--batch-size", type=int, default=8, help="engine batch requests are packed into (default 8)")
    b.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a batch waits to fill before it runs (default 10)")
    b.add_argument("--max-queue", type=int, default=256,
                   help="samples that may wait; more is answered 429 (default 256)")
    b.add_argument("--max-n", type=int, default=64, help="samples one request may ask for (default 64)")
    b.add_argument("--max-upload-mb", type=float, default=16.0, help="request body limit in MiB (default 16)")
    b.add_argument("--max-pixels", type=int, default=4096 * 4096, help="pixels per uploaded image (default 4096^2)")
    b.add_argument("--request-timeout", type=float, default=300.0,
                   help="seconds a request may wait for its pairs before a 503 (default 300)")
    b.add_argument("--max-connections", type=int, default=64,
                   help="concurrent connections; more are answered 503 by uvicorn (default 64)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def serve_command(args, engine_options: dict) -> None:
    from ..errors import AugPaintError

    try:
        import uvicorn

        from .app import Limits, create_app
    except ImportError as exc:
        raise AugPaintError(f"serve needs FastAPI, uvicorn and python-multipart ({exc.name} is missing): "
                            f"pip install 'augpaint-fast[serve]'") from None
    from ..api import from_pretrained

    for flag, value, low in (("--port", args.port, 0), ("--max-n", args.max_n, 1), ("--max-queue", args.max_queue, 1),
                             ("--max-pixels", args.max_pixels, 1), ("--max-connections", args.max_connections, 1)):
        if value < low:
            raise AugPaintError(f"{flag} must be >= {low}, got {value}")
    if args.max_upload_mb <= 0 or args.request_timeout <= 0 or args.max_wait_ms < 0:
        raise AugPaintError("--max-upload-mb and --request-timeout must be > 0 and --max-wait-ms >= 0")
    aug = from_pretrained(args.weights, args.engine, steps=args.steps, eta=args.eta, mask_mode=args.mask,
                          margin=args.margin, flip=args.flip, batch_size=args.batch_size, paste_back=args.paste_back,
                          max_classes=args.max_classes, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                          **engine_options)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_pixels=args.max_pixels,
                    max_n=args.max_n, request_timeout_s=args.request_timeout)
    print(f"augpaint-fast: serving {args.weights} ({aug.image_size}x{aug.image_size}, {args.steps} steps, batch "
          f"{args.batch_size}, engine {args.engine}) on http://{args.host}:{args.port}: POST /augment, GET /health, "
          f"GET /metrics", flush=True)
    uvicorn.run(create_app(aug, limits), host=args.host, port=args.port, log_level=args.log_level,
                limit_concurrency=args.max_connections, timeout_graceful_shutdown=10)
