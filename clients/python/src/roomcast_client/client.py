"""An asyncio roomcast client that survives reconnects without missing messages.

It keeps the rooms and subscriptions it was asked for and the position vector of
what it has seen; after a drop it reconnects with exponential backoff and jitter,
passing both in the connect URL (`roomIds`, `topics`, `since`) so the edge replays
what was missed and then goes live with no gap and no duplicate.

Given a token provider (a function returning a fresh token, sync or async) it also
keeps the connection's token fresh: it sends `refresh` on the open socket ahead of
expiry (with jitter), and after a 4001 close or a `token_expired` refusal it fetches
a new token and reconnects with `since`. After a terminal close (1008, 4003, 1009, 1002,
1007) or a revoked token it stops: retrying the same token or input cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from roomcast_client.lifetime import (
    AfterClose,
    after_close,
    handshake_error_code,
    refresh_delay,
    refresh_retry_delay,
    unverified_exp,
)
from roomcast_client.positions import PositionVector

log = logging.getLogger(__name__)

TokenProvider = Callable[[], str | Awaitable[str]]
TokenSource = str | TokenProvider


class RequestFailed(Exception):
    """The edge answered a request with status "fail"."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply.get("error_message") or "request failed")
        self.reply = reply


class HandshakeRefused(Exception):
    """The edge refused the upgrade (bad token: 401; full or draining: 503).

    For a 401, `code` is token_expired, token_invalid or token_revoked.
    """

    def __init__(self, status: int, code: str = "") -> None:
        detail = f" ({code})" if code else ""
        super().__init__(f"handshake refused with HTTP {status}{detail}")
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Push:
    topic: str | None
    type: str | None
    room: str | None
    payload: Any
    message_id: str
    receive_time: str
    position: str
    received_at: float = field(compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], received_at: float) -> Push:
        meta = data.get("meta") or {}
        return cls(
            topic=data.get("topic"),
            type=data.get("type"),
            room=data.get("room"),
            payload=data.get("payload"),
            message_id=str(meta.get("message_id", "")),
            receive_time=str(meta.get("receive_time", "")),
            position=str(meta.get("position", "")),
            received_at=received_at,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


class RoomcastClient:
    def __init__(
        self,
        url: str | Sequence[str],
        token: TokenSource,
        *,
        rooms: tuple[str, ...] = (),
        subscriptions: tuple[tuple[str, str], ...] = (),
        ping_interval: float = 15.0,
        reconnect: bool = True,
        backoff_min: float = 0.25,
        backoff_max: float = 20.0,
        refresh: bool = True,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        # Several edge URLs are tried in turn, as a load balancer would spread reconnects.
        self._urls = [url] if isinstance(url, str) else list(url)
        self._url_index = 0
        self._token = token
        self.rooms: list[str] = list(dict.fromkeys(rooms))
        self.subscriptions: list[tuple[str, str]] = list(dict.fromkeys(subscriptions))
        self.positions = PositionVector()
        self._ping_interval = ping_interval
        self._reconnect = reconnect
        self._backoff = (backoff_min, backoff_max)
        self._own_session = session is None
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._messages: asyncio.Queue[Push] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self.last_connected: dict[str, Any] = {}
        self.connects = 0
        # Refreshing needs a provider: a fixed token string cannot be renewed.
        self._refresh = refresh and callable(token)
        # Epoch seconds at which the connection's token expires, when known.
        self.token_expires_at: float | None = None
        self.refreshes = 0
        self.refresh_failures = 0
        # Close code of every connection that ended, in order (None: no close frame).
        self.close_codes: list[int | None] = []
        # Why the client stopped for good: a terminal close code or a refused token.
        self.terminal: str | None = None

    # ---- lifecycle ----------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Open the first connection (errors surface here), then keep it up."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await self._open()
        except HandshakeRefused as exc:
            if exc.code != "token_expired" or not callable(self._token):
                raise
            await self._open()  # the provider's previous token ran out: ask it again
        self._runner = asyncio.create_task(self._run())
        return self.last_connected

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._own_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> RoomcastClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _token_value(self) -> str:
        if isinstance(self._token, str):
            return self._token
        value = self._token()
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    @property
    def expires_in(self) -> float | None:
        """Seconds until the connection's token expires (negative once it has)."""
        if self.token_expires_at is None:
            return None
        return self.token_expires_at - time.time()

    def _set_expiry(self, reply: Mapping[str, Any], token: str) -> None:
        expires_in = reply.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            self.token_expires_at = time.time() + float(expires_in)
        else:
            self.token_expires_at = unverified_exp(token)

    def _connect_url(self) -> str:
        query: dict[str, str] = {}
        if self.rooms:
            query["roomIds"] = ",".join(self.rooms)
        if self.subscriptions:
            query["topics"] = ",".join(f"{t}:{k}" for t, k in self.subscriptions)
        if self.positions:
            query["since"] = str(self.positions)
        url = self._urls[self._url_index % len(self._urls)]
        return f"{url}?{urlencode(query)}" if query else url

    async def _open(self) -> None:
        assert self._session is not None
        token = await self._token_value()
        try:
            ws = await self._session.ws_connect(
                self._connect_url(),
                headers={"Authorization": f"Bearer {token}"},
                autoping=True,
                heartbeat=None,
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            code = handshake_error_code(exc.headers, token) if exc.status == 401 else ""
            raise HandshakeRefused(exc.status, code) from None
        first = await ws.receive(timeout=30)
        if first.type != aiohttp.WSMsgType.TEXT:
            await ws.close()
            raise ConnectionError(f"expected the connected message, got {first.type!r}")
        hello = orjson.loads(first.data)
        if hello.get("action") != "connected":
            await ws.close()
            raise ConnectionError(f"expected the connected message, got {hello!r}")
        self.positions.merge_start(str(hello.get("position", "")))
        self.last_connected = hello
        self._set_expiry(hello, token)
        self.connects += 1
        self._ws = ws
        self._connected.set()

    async def _run(self) -> None:
        attempt = 0
        at_once = False
        while not self._closed:
            ws = self._ws
            if ws is not None:
                attempt = 0
                helpers = [asyncio.create_task(self._keepalive(ws))]
                if self._refresh:
                    helpers.append(asyncio.create_task(self._refresher(ws)))
                try:
                    await self._receive(ws)
                finally:
                    for helper in helpers:
                        helper.cancel()
                    self._connected.clear()
                    self._fail_pending(ConnectionError("connection lost"))
                    self._ws = None
                if self._closed_by_us():
                    break
                code = ws.close_code
                self.close_codes.append(code)
                if not self._reconnect:
                    break
                action = after_close(code)
                if action is AfterClose.STOP or (
                    action is AfterClose.NEW_TOKEN and not callable(self._token)
                ):
                    self.terminal = f"closed with {code}"
                    break
                # The token ran out: a fresh one fixes that now, no backoff needed.
                at_once = action is AfterClose.NEW_TOKEN
            if at_once:
                at_once = False
            else:
                low, high = self._backoff
                delay = min(high, low * 2**attempt)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                attempt += 1
            try:
                await self._open()
            except HandshakeRefused as exc:
                if exc.code == "token_revoked" or (exc.code and not callable(self._token)):
                    self.terminal = str(exc)
                    break
                self._url_index += 1
                log.info("reconnect refused", extra={"error": str(exc), "attempt": attempt})
            except (aiohttp.ClientError, OSError, ConnectionError) as exc:
                self._url_index += 1
                log.info("reconnect failed", extra={"error": str(exc), "attempt": attempt})
        self._closed = True
        self._fail_pending(ConnectionError("client closed"))

    def _closed_by_us(self) -> bool:
        # A method, so the check after an await is not taken for the loop's own.
        return self._closed

    async def _refresher(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send `refresh` ahead of expiry; on failure retry until the edge's grace ends."""
        delay: float | None = None
        while not ws.closed:
            remaining = self.expires_in
            if remaining is None:
                return
            await asyncio.sleep(refresh_delay(remaining) if delay is None else delay)
            try:
                token = await self._token_value()
                reply = await self._request("refresh", {"token": token})
            except ConnectionError:
                return
            except Exception as exc:
                # The provider failed or the edge refused the token: the old one still
                # holds until its grace ends (then 4001 brings a reconnect).
                self.refresh_failures += 1
                log.info("token refresh failed", extra={"error": str(exc)})
                delay = refresh_retry_delay(self.expires_in or 0.0)
                continue
            delay = None
            self.refreshes += 1
            self._set_expiry(reply, token)
            self._forget_revoked(reply.get("revoked"))

    def _forget_revoked(self, revoked: object) -> None:
        """Drop what the new token no longer allows, so a reconnect does not ask for it."""
        if not isinstance(revoked, list):
            return
        gone = {str(r) for r in revoked}
        self.rooms = [r for r in self.rooms if r not in gone]
        self.subscriptions = [
            (t, k)
            for t, k in self.subscriptions
            if f"{t}:{k}" not in gone and not (k == "*" and t in gone)
        ]

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            data = orjson.loads(frame.data)
            if "request_id" in data and "action" in data and "meta" not in data:
                future = self._pending.pop(str(data["request_id"]), None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            push = Push.from_json(data, time.time())
            if push.position:
                self.positions.advance(push.position)
            self._messages.put_nowait(push)

    async def _keepalive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self._ping_interval)
            with contextlib.suppress(Exception):
                await self._request("ping", None)

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # ---- requests -------------------------------------------------------------

    async def _request(self, action: str, params: dict[str, Any] | None) -> dict[str, Any]:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("not connected")
        request_id = f"r{next(self._ids)}"
        body: dict[str, Any] = {"request_id": request_id, "timestamp": _now_ms(), "action": action}
        if params is not None:
            body["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await ws.send_str(orjson.dumps(body).decode())
        reply = await asyncio.wait_for(future, timeout=30)
        if reply.get("status") != "ok":
            raise RequestFailed(reply)
        return reply

    async def subscribe(self, topic: str, type_: str = "*") -> dict[str, Any]:
        reply = await self._request("subscribe", {"topic": topic, "type": type_})
        if (topic, type_) not in self.subscriptions:
            self.subscriptions.append((topic, type_))
        return reply

    async def unsubscribe(self, topic: str, type_: str = "*") -> dict[str, Any]:
        reply = await self._request("unsubscribe", {"topic": topic, "type": type_})
        with contextlib.suppress(ValueError):
            self.subscriptions.remove((topic, type_))
        return reply

    async def join(self, room: str) -> dict[str, Any]:
        reply = await self._request("join", {"room": room})
        if room not in self.rooms:
            self.rooms.append(room)
        return reply

    async def leave(self, room: str) -> dict[str, Any]:
        reply = await self._request("leave", {"room": room})
        with contextlib.suppress(ValueError):
            self.rooms.remove(room)
        return reply

    async def ping(self) -> dict[str, Any]:
        return await self._request("ping", None)

    async def refresh(self, token: str | None = None) -> dict[str, Any]:
        """Renew the open connection's token now (from the provider when not given)."""
        token = token if token is not None else await self._token_value()
        reply = await self._request("refresh", {"token": token})
        self.refreshes += 1
        self._set_expiry(reply, token)
        self._forget_revoked(reply.get("revoked"))
        return reply

    # ---- messages ---------------------------------------------------------------

    async def next_message(self, timeout: float | None = None) -> Push:
        return await asyncio.wait_for(self._messages.get(), timeout)

    async def messages(self) -> AsyncIterator[Push]:
        while not (self._closed and self._messages.empty()):
            yield await self._messages.get()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = 30) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)
