"""A test client of the edge's SSE transport: the stream parsed as EventSource does,
and requests POSTed for a stream."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

WAIT = 20.0


@dataclass
class Event:
    event: str  # "message" for an unnamed event
    data: str
    id: str | None
    retry: int | None = None

    def json(self) -> dict[str, Any]:
        body = json.loads(self.data)
        assert isinstance(body, dict)
        return body


@dataclass
class Stream:
    """One open stream: its response and the events read so far (comments apart)."""

    response: aiohttp.ClientResponse
    comments: list[str] = field(default_factory=list)
    last_id: str | None = None
    _buffer: bytes = b""

    async def _line(self) -> str | None:
        while b"\n" not in self._buffer:
            chunk = await self.response.content.readany()
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def next_event(self, timeout: float = WAIT) -> Event | None:
        """The next event (None: the stream ended), by the EventSource parsing rules."""
        async with asyncio.timeout(timeout):
            name, event_id, retry = "", None, None
            data: list[str] = []
            while True:
                line = await self._line()
                if line is None:
                    return None
                if not line:
                    if data or name:
                        if event_id is not None:
                            self.last_id = event_id
                        return Event(name or "message", "\n".join(data), event_id, retry)
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = value
                elif key == "retry" and value.isdigit():
                    retry = int(value)

    async def comment(self, timeout: float = WAIT) -> str:
        """The next comment line's text (use when no event is expected meanwhile)."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self._line()
                assert line is not None, "the stream ended"
                if line.startswith(":"):
                    return line[1:].strip()

    async def connected(self) -> dict[str, Any]:
        event = await self.next_event()
        assert event is not None
        assert event.event == "connected", event
        return event.json()

    async def pushes(self, count: int, timeout: float = WAIT) -> list[Event]:
        """The next `count` pushes (unnamed events)."""
        got: list[Event] = []
        while len(got) < count:
            event = await self.next_event(timeout)
            assert event is not None, f"the stream ended after {len(got)} pushes"
            if event.event == "message":
                got.append(event)
        return got

    async def close_event(self, timeout: float = WAIT) -> Event:
        """Read up to `event: close`; the stream must end right after it."""
        while True:
            event = await self.next_event(timeout)
            assert event is not None, "the stream ended without event: close"
            if event.event == "close":
                assert await self.next_event(timeout) is None, "data after event: close"
                return event


def sse_url(base: str, **query: str) -> str:
    return base + "/sse" + ("?" + urllib.parse.urlencode(query) if query else "")


@asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str] | None = None,
    **query: str,
) -> AsyncIterator[Stream]:
    """A stream that must open (200); its `connected` event is left to read."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=WAIT)
    async with asyncio.timeout(WAIT):  # the head, at least, comes at once
        response = await session.get(sse_url(base, **query), headers=headers, timeout=timeout)
    try:
        assert response.status == 200, (response.status, await response.text())
        yield Stream(response)
    finally:
        response.close()


async def post_request(
    session: aiohttp.ClientSession,
    base: str,
    connection_id: str,
    token: str | None,
    body: Any,
    *,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/v1/connections/{urllib.parse.quote(connection_id, safe='')}/requests"
    data = raw if raw is not None else json.dumps(body).encode()
    async with session.post(url, data=data, headers=headers) as response:
        answer = await response.json(content_type=None)
        assert isinstance(answer, dict)
        return response.status, answer
