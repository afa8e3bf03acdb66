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
import importlib
from collections.abc import Callable

from aiohttp import base_protocol, web, web_protocol

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
    """Raise TakeoverUnsupported when the socket takeover cannot work with this aiohttp;
    then spare aiohttp's redundant TCP_NODELAY call on uvloop's transports and stop
    it reading a request it has already refused."""
    skip_redundant_nodelay()
    stop_reading_refused_requests()
    missing = missing_internals()
    if missing:
        needs = dict(REQUIRED)
        detail = "; ".join(f"{name} ({needs[name]})" for name in missing)
        raise TakeoverUnsupported(
            f"aiohttp {_version()} changed internals the WebSocket takeover uses: {detail}. "
            "Install an aiohttp release this edge was tested with."
        )


_Nodelay = Callable[[asyncio.Transport, bool], None]
# aiohttp's own tcp_nodelay, once replaced (None: not replaced).
_aiohttp_nodelay: _Nodelay | None = None


def _uvloop_tcp_transport() -> type | None:
    try:
        loop_module = importlib.import_module("uvloop.loop")
    except ImportError:
        return None
    transport = getattr(loop_module, "TCPTransport", None)
    return transport if isinstance(transport, type) else None


def skip_redundant_nodelay() -> bool:
    """Have aiohttp's connection_made leave TCP_NODELAY alone on uvloop TCP transports.

    uvloop sets TCP_NODELAY on every TCP socket it opens or accepts; aiohttp's
    `tcp_nodelay()` sets it again through `get_extra_info("socket")`, for which
    uvloop builds a Python socket object: ~13 µs of every handshake here. The name
    aiohttp's BaseProtocol calls is replaced by one that skips uvloop's transports
    and calls aiohttp's own for any other. Nothing is replaced (False) unless
    BaseProtocol.connection_made still calls a module-level `tcp_nodelay` and uvloop
    is there; `tests/unit/edge/test_takeover_internals.py` checks that it is
    replaced and that uvloop's sockets do have TCP_NODELAY.
    """
    global _aiohttp_nodelay
    if _aiohttp_nodelay is not None:
        return True
    original = getattr(base_protocol, "tcp_nodelay", None)
    made = getattr(getattr(base_protocol, "BaseProtocol", None), "connection_made", None)
    code = getattr(made, "__code__", None)
    uvloop_transport = _uvloop_tcp_transport()
    if (
        not callable(original)
        or code is None
        or "tcp_nodelay" not in code.co_names
        or uvloop_transport is None
    ):
        return False

    def tcp_nodelay(transport: asyncio.Transport, value: bool) -> None:
        if value and type(transport) is uvloop_transport:
            return  # already set by uvloop
        original(transport, value)

    _aiohttp_nodelay = original
    base_protocol.tcp_nodelay = tcp_nodelay  # type: ignore[attr-defined]
    return True


def restore_nodelay() -> None:
    """Put aiohttp's own tcp_nodelay back (tests)."""
    global _aiohttp_nodelay
    if _aiohttp_nodelay is not None:
        base_protocol.tcp_nodelay = _aiohttp_nodelay  # type: ignore[attr-defined,assignment]
        _aiohttp_nodelay = None


_DataReceived = Callable[[web_protocol.RequestHandler, bytes], None]
# aiohttp's own RequestHandler.data_received, once wrapped (None: not wrapped).
_aiohttp_data_received: _DataReceived | None = None


def stop_reading_refused_requests() -> bool:
    """Pause reading a connection once aiohttp's parser has refused its request.

    aiohttp answers a request line over its limit with 400, but until that answer is
    written it keeps feeding every later segment of the same request to its parser,
    which refuses each again: a 2 MB URL cost ~10 ms of the edge's CPU, and a client
    sending such URLs back to back slowed every other client. After the refusal the
    rest of the request is never read; aiohttp still answers 400 and closes. Nothing
    is wrapped (False) unless RequestHandler keeps its queue in `_messages` and marks
    a refusal with `_ErrInfo`; `tests/unit/edge/test_takeover_internals.py` checks
    that it is wrapped.
    """
    global _aiohttp_data_received
    if _aiohttp_data_received is not None:
        return True
    handler = web_protocol.RequestHandler
    refused = getattr(web_protocol, "_ErrInfo", None)
    if not isinstance(refused, type) or "_messages" not in _slots(handler):
        return False
    original: _DataReceived = handler.data_received

    def data_received(self: web_protocol.RequestHandler, data: bytes) -> None:
        original(self, data)
        messages = self._messages
        if messages and isinstance(messages[-1][0], refused):
            transport = self.transport
            if transport is not None and transport.is_reading():
                transport.pause_reading()

    _aiohttp_data_received = original
    handler.data_received = data_received  # type: ignore[method-assign]
    return True


def restore_data_received() -> None:
    """Put aiohttp's own RequestHandler.data_received back (tests)."""
    global _aiohttp_data_received
    if _aiohttp_data_received is not None:
        web_protocol.RequestHandler.data_received = _aiohttp_data_received  # type: ignore[method-assign,assignment]
        _aiohttp_data_received = None


def _version() -> str:
    import aiohttp

    return str(getattr(aiohttp, "__version__", "?"))


class TakenOver(web.StreamResponse):
    """What the handler returns once the socket is ours: aiohttp has nothing to write."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_over(request: web.Request, transport: asyncio.Transport, conn: Connection) -> bytes:
    """Hand the socket from aiohttp's HTTP protocol to `conn`; returns the client bytes
    aiohttp had already read.

    Done synchronously, so every later client byte reaches `conn`. aiohttp's protocol is
    then told its connection is over (which lets its request, parser and task go) with
    its transport detached first, so it neither writes to nor closes the socket. The
    101 is not written here: the caller writes it together with the first frames (see
    `Fanout.flush_now`), and before anything else reaches the socket.
    """
    http = request.protocol
    try:
        # Frames a client sent together with its upgrade request, buffered by aiohttp.
        tail = http._message_tail
        http.transport = None
    except AttributeError as exc:
        # Before the 101: the client gets an HTTP error, the log names the cause.
        raise TakeoverUnsupported(f"aiohttp {_version()}: {exc}") from exc
    transport.set_protocol(conn)
    http.connection_lost(None)
    if not transport.is_reading():
        transport.resume_reading()  # aiohttp may have paused it
    return bytes(tail) if tail else b""
