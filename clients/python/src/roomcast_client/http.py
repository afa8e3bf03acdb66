"""The two HTTP calls a client makes: get a token from auth, publish through publisher."""

from __future__ import annotations

from typing import Any

import aiohttp


class ApiCallFailed(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], api_key: str | None
) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with session.post(url, json=body, headers=headers) as response:
        data = await response.json(content_type=None)
        if response.status >= 300:
            raise ApiCallFailed(response.status, data)
        return data


async def fetch_token(
    session: aiohttp.ClientSession,
    auth_url: str,
    *,
    device_id: str,
    user_id: str | None = None,
    rooms: list[str] | None = None,
    topics: list[str] | None = None,
    ttl: int | None = None,
    api_key: str | None = None,
) -> str:
    body: dict[str, Any] = {"device_id": device_id, "is_login": user_id is not None}
    if user_id is not None:
        body["user_id"] = user_id
    if rooms is not None:
        body["rooms"] = rooms
    if topics is not None:
        body["topics"] = topics
    if ttl is not None:
        body["ttl"] = ttl
    data = await _post(session, auth_url.rstrip("/") + "/v1/tokens", body, api_key)
    return str(data["token"])


async def publish(
    session: aiohttp.ClientSession,
    publisher_url: str,
    payload: Any,
    *,
    topic: str | None = None,
    type_: str | None = None,
    room: str | None = None,
    message_id: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"payload": payload}
    for name, value in (
        ("topic", topic),
        ("type", type_),
        ("room", room),
        ("message_id", message_id),
    ):
        if value is not None:
            body[name] = value
    result: dict[str, Any] = await _post(
        session, publisher_url.rstrip("/") + "/v1/messages", body, api_key
    )
    return result
