"""Taking a socket over from aiohttp once the 101 is written.

aiohttp has no public way to hand a socket to another protocol without its
WebSocketResponse (a reader, a writer and a task per connection), so this module
reaches into its HTTP protocol. Everything it relies on is listed in `REQUIRED` and
checked by `check_aiohttp()` when the app is created: an aiohttp that changed these
internals stops the edge at start with a message naming what is missing, instead of
breaking connections one by one.
"""

from __future__ import annotations

import asyncio

from aiohttp import web, web_protocol

from roomcast_edge.transport.connection import Connection

# (what, why the takeover needs it)
REQUIRED = (
    ("web.BaseRequest.protocol", "the HTTP protocol object serving the request"),
    ("RequestHandler._message_tail", "frames the client sent right behind its upgrade"),
    ("RequestHandler.transport", "detached so aiohttp neither writes to nor closes the socket"),
    ("RequestHandler.connection_lost", "lets aiohttp release its request, parser and task"),
    ("web.StreamResponse.prepare", "overridden: aiohttp must write nothing after the 101"),
    ("web.StreamResponse.write_eof", "overridden: aiohttp must write nothing after the 101"),
)


class TakeoverUnsupported(RuntimeError):
    """The installed aiohttp lacks an internal the socket takeover depends on."""


def _slots(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return names


def missing_internals() -> list[str]:
    """The entries of REQUIRED that the installed aiohttp does not have."""
    missing: list[str] = []
    if not isinstance(getattr(web.BaseRequest, "protocol", None), property):
        missing.append("web.BaseRequest.protocol")
    handler = getattr(web_protocol, "RequestHandler", None)
    if not isinstance(handler, type):
        missing.extend(w for w, _ in REQUIRED if w.startswith("RequestHandler."))
    else:
        slots = _slots(handler)
        for name in ("_message_tail", "transport"):
            if name not in slots:
                missing.append(f"RequestHandler.{name}")
        if not callable(getattr(handler, "connection_lost", None)):
            missing.append("RequestHandler.connection_lost")
    for name in ("prepare", "write_eof"):
        if not callable(getattr(web.StreamResponse, name, None)):
            missing.append(f"web.StreamResponse.{name}")
    return missing


def check_aiohttp() -> None:
    """Raise TakeoverUnsupported when the socket takeover cannot work with this aiohttp."""
    missing = missing_internals()
    if missing:
        needs = dict(REQUIRED)
        detail = "; ".join(f"{name} ({needs[name]})" for name in missing)
        raise TakeoverUnsupported(
            f"aiohttp {_version()} changed internals the WebSocket takeover uses: {detail}. "
            "Install an aiohttp release this edge was tested with."
        )


def _version() -> str:
    import aiohttp

    return str(getattr(aiohttp, "__version__", "?"))


class TakenOver(web.StreamResponse):
    """What the handler returns once the socket is ours: aiohttp has nothing to write."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_over(
    request: web.Request, transport: asyncio.Transport, conn: Connection, response: bytes
) -> bytes:
    """Write the 101 `response` and hand the socket from aiohttp's HTTP protocol to
    `conn`; returns the client bytes aiohttp had already read.

    Done synchronously, so every later client byte reaches `conn`. aiohttp's protocol is then told its connection is over (which
    lets its request, parser and task go) with its transport detached first, so it
    neither writes to nor closes the socket.
    """
    http = request.protocol
    try:
        # Frames a client sent together with its upgrade request, buffered by aiohttp.
        tail = http._message_tail
        http.transport = None
    except AttributeError as exc:
        # Before the 101: the client gets an HTTP error, the log names the cause.
        raise TakeoverUnsupported(f"aiohttp {_version()}: {exc}") from exc
    transport.write(response)
    transport.set_protocol(conn)
    http.connection_lost(None)
    if not transport.is_reading():
        transport.resume_reading()  # aiohttp may have paused it
    return bytes(tail) if tail else b""
