"""uvicorn for the service, with deadlines on what the client sends: a connection that has not sent a complete
request head within ``header_timeout`` seconds of opening (or of its previous response), or that stays silent
that long in the middle of a request body, is closed.

uvicorn (0.55) bounds only the idle time *between* requests (``timeout_keep_alive``); a socket that connects and
never sends a byte stays open for ever, and with a global ``limit_concurrency`` enough of them turn every request
into a 503. Here no global connection limit is set (``/augment`` limits itself inside the app, so ``/health``
always answers) and idle or slow-head connections are dropped by :class:`HeadTimeoutH11Protocol`.
"""
from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete within ``header_timeout``
    seconds, or whose body stops for that long (unless uvicorn paused reading because the app is behind); set
    the class attribute on a subclass (:func:`build_server` does)."""

    header_timeout: float = 5.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY:  # the head is parsed: the body must keep coming
            self._arm_head_timer()
        elif self.conn.their_state is not h11.IDLE:  # the request is complete (or the connection failed)
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:  # waiting for the next head
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            return
        if self.conn.their_state is h11.SEND_BODY and self.flow.read_paused:
            self._arm_head_timer()  # we stopped reading, not the client
            return
        self.transport.close()  # the app sees a disconnect; h11 cannot answer (408) before a request


def build_server(app, host: str, port: int, *, header_timeout: float = 5.0, log_level: str = "info",
                 timeout_graceful_shutdown: int | None = 10) -> uvicorn.Server:
    """A ``uvicorn.Server`` for ``app`` on the h11 protocol with a request-head deadline (no global connection
    limit); ``server.run()`` serves until SIGINT/SIGTERM or ``server.should_exit``."""
    protocol = type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"header_timeout": header_timeout})
    config = uvicorn.Config(app, host=host, port=port, http=protocol, log_level=log_level,
                            timeout_graceful_shutdown=timeout_graceful_shutdown)
    return uvicorn.Server(config)
