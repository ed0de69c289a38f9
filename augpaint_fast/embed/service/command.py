"""``augpaint-fast serve``: load the weights once, then serve ``service.app`` under uvicorn.

Every argument, the token and the host are checked before the weights are loaded, and the weights (checked
too) before the server starts, so a bad setting or weights folder is one error line and ``GET /health``
answers 200 from the first request on. A non-loopback ``--host`` needs a token (``AUGPAINT_FAST_TOKEN`` or
``--token-file``) unless ``--insecure``. ``--workers N`` serves N batches at once on N engine processes of one
thread each (``job.workers``); scale out further with more servers (one per GPU) behind a load balancer.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

TOKEN_ENV = "AUGPAINT_FAST_TOKEN"
MIN_TOKEN_CHARS = 16
# the [serve] extra: the modules the service imports (FastAPI finds python-multipart itself), and its pip packages
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client")
SERVE_PACKAGES = "fastapi uvicorn python-multipart prometheus-client"


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


def service_parts():
    """``(Limits, create_app, build_server)``, or AugPaintError naming the extra to install."""
    from ...host import optional_import

    for module in SERVE_MODULES:
        optional_import(module, extra="serve", feature="serve", packages=SERVE_PACKAGES)
    from .app import Limits, create_app
    from .server import build_server

    return Limits, create_app, build_server


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse a non-loopback ``host`` without a token unless ``insecure``."""
    from ...errors import AugPaintError

    if token is None and not is_loopback(host) and not insecure:
        raise AugPaintError(f"--host {host} is not a loopback address and no token is set: set {TOKEN_ENV} or "
                            f"--token-file (clients then send 'Authorization: Bearer <token>'), or pass --insecure")


def run_server(server) -> None:
    """Run a built server until it stops; uvicorn shuts down gracefully on SIGINT, then re-raises it."""
    try:
        server.run()
    except KeyboardInterrupt:
        pass
