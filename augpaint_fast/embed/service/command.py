"""``augpaint-fast serve``: load the weights once, then serve ``service.app`` under uvicorn.

Every argument, the token and the host are checked before the weights are loaded, and the weights (checked
too) before the server starts, so a bad setting or weights folder is one error line and ``GET /health``
answers 200 from the first request on. A non-loopback ``--host`` needs a token (``AUGPAINT_FAST_TOKEN`` or
``--token-file``) unless ``--insecure``. One process drives one engine; scale out with more processes (one
per GPU) behind a load balancer.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

TOKEN_ENV = "AUGPAINT_FAST_TOKEN"
MIN_TOKEN_CHARS = 16
# the [serve] extra: the modules the service imports (FastAPI finds python-multipart itself), and its pip packages
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client")
SERVE_PACKAGES = "fastapi uvicorn python-multipart prometheus-client"


def add_serve_args(p: argparse.ArgumentParser, shipped_weights: Path) -> None:
    p.add_argument("--weights", type=Path, default=shipped_weights, help="weights folder (default: shipped tiny)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1); any other than loopback needs a token or "
                        "--insecure")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s = p.add_argument_group("sampling", "fixed for the server's lifetime; seed, n and source id come per request")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    s.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1)")
    s.add_argument("--mask", default="box", help="known region: box (default), component or label")
    s.add_argument("--margin", type=int, default=0, help="pixels added around each box (default 0)")
    s.add_argument("--flip", default="none", help="none, horizontal, vertical, both or random")
    s.add_argument("--paste-back", action="store_true", help="paste the source's pixels into the known region")
    s.add_argument("--max-classes", type=int, default=16, help="refuse labels with more classes than this")
    a = p.add_argument_group(
        "access", f"a shared secret: clients send 'Authorization: Bearer <token>' to every path but /health "
                  f"(401 otherwise); the token comes from --token-file or the environment variable {TOKEN_ENV} "
                  f"(at least {MIN_TOKEN_CHARS} printable ASCII characters; the file wins)")
    a.add_argument("--token-file", type=Path, help=f"file holding the token (default: ${TOKEN_ENV}, else none)")
    a.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without a token (anyone who reaches the port may use it)")
    a.add_argument("--no-docs", action="store_true",
                   help="do not serve /docs, /redoc and /openapi.json (they are off anyway when a token is set)")
    b = p.add_argument_group("batching and limits")
    b.add_argument("--batch-size", type=int, default=8, help="engine batch requests are packed into (default 8)")
    b.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a batch waits to fill before it runs (default 10)")
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
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback interface; other names count as not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None, environ=os.environ) -> str | None:
    """The shared secret from ``token_file`` or else ``$AUGPAINT_FAST_TOKEN`` (surrounding whitespace dropped);
    None when neither is given. Raises AugPaintError for an unreadable file or an empty or unusable token."""
    from ...errors import AugPaintError

    if token_file is not None:
        where = f"--token-file {token_file}"
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AugPaintError(f"cannot read {where} ({getattr(exc, 'strerror', None) or exc})") from None
    elif TOKEN_ENV in environ:
        where, token = f"${TOKEN_ENV}", environ[TOKEN_ENV].strip()
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not all(c.isprintable() and not c.isspace()
                                                                       for c in token):
        raise AugPaintError(f"the token in {where} must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
                            f"without spaces (got {len(token)} characters)")
    return token


def _check_args(args) -> None:
    from ...errors import AugPaintError

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


def serve_command(args, engine_options: dict) -> None:
    from ...errors import AugPaintError
    from ...host import optional_import

    for module in SERVE_MODULES:
        optional_import(module, extra="serve", feature="serve", packages=SERVE_PACKAGES)
    from .app import Limits, create_app
    from .server import build_server
    from ..api import from_pretrained

    _check_args(args)
    token = read_token(args.token_file)
    if token is None and not is_loopback(args.host) and not args.insecure:
        raise AugPaintError(f"--host {args.host} is not a loopback address and no token is set: set {TOKEN_ENV} or "
                            f"--token-file (clients then send 'Authorization: Bearer <token>'), or pass --insecure")
    aug = from_pretrained(args.weights, args.engine, steps=args.steps, eta=args.eta, mask_mode=args.mask,
                          margin=args.margin, flip=args.flip, batch_size=args.batch_size, paste_back=args.paste_back,
                          max_classes=args.max_classes, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                          **engine_options)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_pixels=args.max_pixels,
                    max_n=args.max_n, request_timeout_s=args.request_timeout, max_active=args.max_connections,
                    memory_budget_bytes=int(args.memory_budget_mb * (1 << 20)))
    app = create_app(aug, limits, token=token, docs=False if args.no_docs else None)
    print(f"augpaint-fast: serving {args.weights} ({aug.image_size}x{aug.image_size}, {args.steps} steps, batch "
          f"{args.batch_size}, engine {args.engine}) on http://{args.host}:{args.port}: POST /augment, GET /health, "
          f"GET /metrics ({'token required' if token else 'no token'})", flush=True)
    server = build_server(app, args.host, args.port, header_timeout=args.header_timeout, log_level=args.log_level)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on SIGINT, then re-raises it (as uvicorn.run)
        pass
