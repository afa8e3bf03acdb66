"""ROOMCAST_EDGE__COMPRESSION=true: permessage-deflate for clients that offer it, plain for others."""

from __future__ import annotations

from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import Publisher, connect, message, recv_json, token


async def test_compressed_and_plain_clients_get_the_same_pushes(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__COMPRESSION="true"))
    deflating, _ = await connect(edge, {"compression": "deflate"}, token=token())
    plain, _ = await connect(edge, {"compression": None}, token=token())
    assert deflating.response is not None
    assert "permessage-deflate" in deflating.response.headers.get("Sec-WebSocket-Extensions", "")
    assert plain.response is not None
    assert "Sec-WebSocket-Extensions" not in plain.response.headers
    msgs = [message({"text": "tick " * 200, "seq": i}) for i in range(5)]
    await publisher.send_many(msgs)
    for ws in (deflating, plain):
        got = [await recv_json(ws) for _ in msgs]
        assert [p["payload"] for p in got] == [m.payload for m in msgs]
    # requests still work both ways on the compressed connection
    await deflating.send('{"request_id":"c","action":"ping"}')
    assert (await recv_json(deflating))["status"] == "ok"
    for ws in (deflating, plain):
        await ws.close()
