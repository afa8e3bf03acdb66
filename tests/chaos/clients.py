"""Ledger clients of the chaos lane: connect, read, ping, and come back with `since`.

A client lives for the whole lane. Whenever its socket ends (a killed edge, a cut
link, 4001 after a token storm, 4008 after it stalled) it takes a token from auth
when it needs one and reconnects to any edge with its position vector. Every push
goes into its ledger record, and each partition's offsets must only rise: a push at
or behind one already received is a duplicate or a reordering, noted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from tests.robustness.ledger import ClientRecord, Ledger, parse_position

PING_SECONDS = 10.0
CONNECT_TIMEOUT = 15.0


@dataclass
class Fleet:
    """What every client shares: where to connect, the ledger, the tallies."""

    ledger: Ledger
    edge_urls: list[str]
    auth_url: str
    http: aiohttp.ClientSession
    token_ttl: int
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    closes: Counter[str] = field(default_factory=Counter)
    handshake_refusals: Counter[str] = field(default_factory=Counter)
    reorders: list[str] = field(default_factory=list)
    unexpected_closes: list[str] = field(default_factory=list)
    tokens_issued: int = 0


async def issue_token(fleet: Fleet, device: str, user: str, ttl: int) -> str:
    """A token from the auth service, as an app backend would get one."""
    body = {"device_id": device, "user_id": user, "is_login": True, "ttl": ttl}
    async with fleet.http.post(fleet.auth_url + "/v1/tokens", json=body) as reply:
        if reply.status != 201:
            raise aiohttp.ClientResponseError(
                reply.request_info, (), status=reply.status, message="token refused"
            )
        data = await reply.json()
    fleet.tokens_issued += 1
    return str(data["token"])


# Close codes the lane's faults may cause; anything else is a broken promise.
EXPECTED_CLOSES = {1000, 1001, 1006, 1011, 1012, 4000, 4001, 4008}


class ChaosClient:
    def __init__(
        self,
        fleet: Fleet,
        name: str,
        user: str,
        rooms: tuple[str, ...],
        subscriptions: tuple[tuple[str, str], ...],
        seed: int,
    ) -> None:
        self.fleet = fleet
        self.name = name
        self.user = user
        self.rooms = rooms
        self.subscriptions = subscriptions
        self.rng = random.Random(seed)
        self.record: ClientRecord | None = None
        self.ws: ClientConnection | None = None
        self.sessions = 0
        self._token: str | None = None
        self._token_expires = 0.0
        self._short_ttl: int | None = None  # set by a token storm for the next token
        self._last_offset: dict[int, int] = {}
        self._changed = asyncio.Event()
        self.connected = asyncio.Event()

    # ---- the client's life -----------------------------------------------------

    async def run(self) -> None:
        backoff = 0.2
        while not self.fleet.stopping.is_set():
            try:
                await self._session()
                backoff = 0.2
            except (OSError, TimeoutError, websockets.WebSocketException, aiohttp.ClientError):
                pass
            if self.fleet.stopping.is_set():
                return
            await asyncio.sleep(self.rng.uniform(0.0, backoff))
            backoff = min(backoff * 2, 3.0)

    async def _session(self) -> None:
        token = await self._fresh_token()
        query: dict[str, str] = {"token": token}
        if self.rooms:
            query["roomIds"] = ",".join(self.rooms)
        if self.subscriptions:
            query["topics"] = ",".join(f"{t}:{k}" for t, k in self.subscriptions)
        if self.record is not None:
            query["since"] = self.record.vector()
        url = self.rng.choice(self.fleet.edge_urls) + "?" + urllib.parse.urlencode(query)
        try:
            ws = await websockets.connect(
                url,
                open_timeout=CONNECT_TIMEOUT,
                ping_interval=None,
                max_queue=None,
                close_timeout=2,
            )
        except websockets.InvalidStatus as refused:
            status = refused.response.status_code
            self.fleet.handshake_refusals[str(status)] += 1
            if status == 401:
                self._token = None  # expired or refused: the next try takes a new one
            raise
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT))
            if hello.get("action") != "connected":
                raise websockets.InvalidMessage(f"first frame {hello!r}")
            if self.record is None:
                self.record = self.fleet.ledger.client(self.name, hello, self.subscriptions)
            else:
                self.record.connected(hello)
            self.sessions += 1
            self.ws = ws
            self.connected.set()
            pinging = asyncio.create_task(self._ping(ws))
            try:
                async for raw in ws:
                    self._received(json.loads(raw))
            finally:
                pinging.cancel()
        finally:
            self.connected.clear()
            self.ws = None
            code = ws.close_code
            self.fleet.closes[str(code)] += 1
            if code == 4001:
                self._token = None
            if code is not None and code not in EXPECTED_CLOSES:
                self.fleet.unexpected_closes.append(f"{self.name}: {code} {ws.close_reason}")
            with contextlib.suppress(Exception):
                await ws.close()

    def _received(self, body: dict[str, Any]) -> None:
        if "meta" not in body or self.record is None:
            return
        self.record.push(body)
        partition, offset = parse_position(str(body["meta"]["position"]))
        last = self._last_offset.get(partition, -1)
        if offset <= last:
            self.fleet.reorders.append(f"{self.name}: {partition}:{offset} after {last}")
        self._last_offset[partition] = max(last, offset)
        self._changed.set()

    async def _ping(self, ws: ClientConnection) -> None:
        sent = 0
        while True:
            await asyncio.sleep(PING_SECONDS * self.rng.uniform(0.5, 1.0))
            sent += 1
            request = {"request_id": f"p{sent}", "action": "ping"}
            with contextlib.suppress(websockets.WebSocketException):
                await ws.send(json.dumps(request))

    async def _fresh_token(self) -> str:
        if self._token is not None and time.time() < self._token_expires - 5:
            return self._token
        ttl = self._short_ttl or self.fleet.token_ttl
        self._token = await issue_token(self.fleet, self.name, self.user, ttl)
        self._token_expires = time.time() + ttl
        self._short_ttl = None
        return self._token

    # ---- what faults do to a client -------------------------------------------

    async def expire_soon(self, ttl: int) -> None:
        """Token storm: reconnect now with a token that ends in `ttl` seconds, with the
        others of the storm; the edge then closes it with 4001 and it comes back."""
        self._short_ttl = ttl
        self._token = None
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    # ---- the end ---------------------------------------------------------------

    def has(self, message_ids: list[str]) -> bool:
        if self.record is None:
            return not message_ids
        got = {m for m, _ in self.record.received}
        return all(m in got for m in message_ids)

    def expected(self, record: ClientRecord) -> list[str]:
        return self.fleet.ledger.expected(record)

    async def settle(self, timeout: float) -> bool:
        """Wait until connected and holding every message the ledger expects of it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            record = self.record
            if record is not None and self.connected.is_set() and self.has(self.expected(record)):
                return True
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)
        return False

    async def close(self) -> None:
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
