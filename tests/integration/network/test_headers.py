"""Header bytes that are not ASCII are refused like any wrong credential: 401, never 500.

aiohttp hands such bytes to handlers as surrogate escapes, which no encoder accepts;
every place that reads Authorization (API keys, connection tokens, the WebSocket
upgrade) must refuse them before encoding anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from roomcast_core.tokens import TokenIssuer
from tests.conftest import Infra, ServiceFactory
from tests.e2e.conftest import Stack
from tests.integration.network.rawhttp import RawReply, exchange, head, post

API_KEY = "key-0123456789abcdef"
SECRET = "test-secret-0123456789abcdefghijklmnop"  # the one infra.env() configures
BAD_AUTHORIZATION = [
    b"Bearer \xff\xfe",  # not UTF-8 at all
    b"Bearer \xc3\xa9t\xc3\xa9",  # UTF-8, but not ASCII
    b"Bearer abc\x80def",
    b"\xff\xfe",
    b"B\xe9arer " + API_KEY.encode(),
]
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def port(url: str) -> int:
    return int(url.rpartition(":")[2])


async def send(url: str, request: bytes) -> RawReply:
    reply = await exchange(port(url), [request])
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    reply.json()  # a JSON answer, not a crash page
    return reply


async def test_non_ascii_authorization_is_401_on_every_service(
    stack: Stack, infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    keys = {
        "ROOMCAST_AUTH__API_KEYS": API_KEY,
        "ROOMCAST_PUBLISHER__API_KEYS": API_KEY,
        "ROOMCAST_AUTH__CORS_ORIGINS": "*",
    }
    auth = start_service("auth", infra.env(topic, **keys))
    publisher = start_service("publisher", infra.env(topic, **keys))
    edge = stack.edges[0].url
    token_body = b'{"device_id": "d", "user_id": "u", "is_login": true}'
    for bad in BAD_AUTHORIZATION:
        credentials: Mapping[str, bytes] = {"Authorization": bad}
        guarded = [
            (auth.url, post("/v1/tokens", token_body, credentials)),
            (auth.url, head("GET", "/get/token?deviceId=d", credentials)),
            (auth.url, post("/v1/tokens/abc/revoke", b"", credentials)),
            (stack.auth.url, post("/v1/heartbeat", b"", credentials)),
            (publisher.url, post("/v1/messages", b'{"payload": 1}', credentials)),
            (
                publisher.url,
                post("/v1/messages/batch", b'{"messages": [{"payload": 1}]}', credentials),
            ),
            (publisher.url, post("/push/new/score/message", b'{"message": "1:0"}', credentials)),
            (edge, head("GET", "/ws", {**UPGRADE, **credentials})),
        ]
        for url, request in guarded:
            reply = await send(url, request)
            assert reply.status == 401, (bad, request.split(b"\r\n")[0], reply)

    # The same bytes in the query string of the compatible heartbeat and of /ws.
    assert (await send(stack.auth.url, head("GET", "/heartbeat?token=%FF%FE"))).status == 401
    ws_query = head("GET", "/ws?token=%C3%A9%FF", UPGRADE)
    assert (await send(edge, ws_query)).status == 401

    # A right key still works, and an origin that is not ASCII is simply not allowed.
    allowed = post(
        "/v1/tokens",
        token_body,
        {"Authorization": f"Bearer {API_KEY}", "Origin": b"https://\xff.example"},
    )
    reply = await send(auth.url, allowed)
    assert reply.status == 201, reply
    assert "access-control-allow-origin" not in reply.headers


async def test_odd_bytes_in_any_other_header_are_never_a_500(stack: Stack) -> None:
    """Every header a service might read, filled with bytes that are not ASCII."""
    odd = b"\xff\xfe \xc3\xa9 \x80"
    noise: dict[str, str | bytes] = {
        name: odd
        for name in (
            "Origin",
            "traceparent",
            "tracestate",
            "baggage",
            "User-Agent",
            "X-Request-Id",
            "X-Forwarded-For",
            "Accept",
            "Accept-Encoding",
            "Cookie",
            "Sec-WebSocket-Protocol",
        )
    }
    token = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 600).token
    body = b'{"device_id": "d", "user_id": "u", "is_login": true}'
    requests = [
        (stack.auth.url, post("/v1/tokens", body, noise)),
        (stack.auth.url, post("/v1/heartbeat", b"", {**noise, "Authorization": f"Bearer {token}"})),
        (stack.auth.url, head("GET", "/get/token?deviceId=d", noise)),
        (stack.publisher.url, post("/v1/messages", b'{"payload": 1}', noise)),
        (stack.publisher.url, post("/v1/messages", b'{"payload": 1}', {"Content-Type": odd})),
    ]
    for service in (stack.auth, stack.publisher, stack.edges[0]):
        for path in ("/health", "/readyz", "/metrics"):
            requests.append((service.url, head("GET", path, noise)))
    edge = stack.edges[0].url
    requests += [
        (edge, head("GET", f"/ws?token={token}", {**UPGRADE, **noise})),
        (edge, head("GET", f"/ws?token={token}", {**UPGRADE, "Sec-WebSocket-Key": odd})),
        (edge, head("GET", f"/ws?token={token}", {**UPGRADE, "Sec-WebSocket-Extensions": odd})),
        (edge, head("GET", f"/ws?token={token}", {**UPGRADE, "Upgrade": odd})),
        (edge, head("GET", f"/ws?token={token}&roomIds=%FF%FE", UPGRADE)),
    ]
    for url, request in requests:
        reply = await exchange(port(url), [request])
        assert reply.status < 500, (url, request.split(b"\r\n")[0], reply)
    # Headers nobody needs do not stand in the way of a valid upgrade.
    upgraded = await exchange(port(edge), [head("GET", f"/ws?token={token}", {**UPGRADE, **noise})])
    assert upgraded.status == 101
