"""The request/reply protocol and the connect step, against a real edge process."""

from __future__ import annotations

import json
import time

import websockets

from roomcast_core.tokens import TokenIssuer
from tests.integration.edge.conftest import (
    SECRET,
    SharedEdge,
    connect,
    http_get,
    recv_json,
    recv_reply,
    request,
    token,
    ws_url,
)


async def test_connected_message_has_the_spec_shape(shared_edge: SharedEdge) -> None:
    ws, hello = await connect(shared_edge.edge, token=token(), roomIds=" 1001 ,2002,1001,3003")
    async with ws:
        assert hello["status"] == "ok"
        assert hello["rooms"] == ["1001", "2002"]  # trimmed, de-duplicated, cut to MAX_ROOMS
        assert isinstance(hello["connection_id"], str)
        assert hello["connection_id"]
        assert isinstance(hello["timestamp"], int)
        entries = dict(part.split(":") for part in hello["position"].split(","))
        assert sorted(entries) == ["0", "1", "2"]
        assert all(int(v) == -1 for v in entries.values())  # a fresh topic: nothing yet
        # The room MAX_ROOMS cut is refused, with its reason (SPEC, wave 3).
        assert hello["refused"] == ["3003"]
        assert hello["refused_reasons"] == {"3003": "too_many_rooms"}
        assert "recovered" not in hello


async def test_token_in_authorization_header(shared_edge: SharedEdge) -> None:
    async with websockets.connect(
        ws_url(shared_edge.edge), additional_headers={"Authorization": f"Bearer {token()}"}
    ) as ws:
        assert (await recv_json(ws))["action"] == "connected"


async def test_rooms_outside_the_claim_are_refused(shared_edge: SharedEdge) -> None:
    ws, hello = await connect(shared_edge.edge, token=token(rooms=["1001"]), roomIds="1001,9999")
    async with ws:
        assert hello["rooms"] == ["1001"]
        assert hello["refused"] == ["9999"]
        assert hello["refused_reasons"] == {"9999": "not_allowed"}


async def test_a_connect_with_nothing_refused_lists_no_refusals(shared_edge: SharedEdge) -> None:
    ws, hello = await connect(shared_edge.edge, token=token(), roomIds="1001,2002", topics="a:b")
    async with ws:
        assert hello["rooms"] == ["1001", "2002"]
        assert "refused" not in hello
        assert "refused_reasons" not in hello


async def test_rooms_cut_and_rooms_outside_the_claim_are_refused_alike(
    shared_edge: SharedEdge,
) -> None:
    # MAX_ROOMS is 2: the cut comes first (it reads the URL), then the claim.
    ws, hello = await connect(
        shared_edge.edge, token=token(rooms=["1001", "3003"]), roomIds="9999,1001,3003,4004"
    )
    async with ws:
        assert hello["rooms"] == ["1001"]
        assert hello["refused"] == ["9999", "3003", "4004"]
        assert hello["refused_reasons"] == {
            "9999": "not_allowed",
            "3003": "too_many_rooms",
            "4004": "too_many_rooms",
        }


async def test_connect_time_topics_and_refusals(shared_edge: SharedEdge) -> None:
    ws, hello = await connect(
        shared_edge.edge, token=token(topics=["order"]), topics="order:event,secret:*,:x"
    )
    async with ws:
        assert hello["refused"] == ["secret:*", ":x"]
        assert hello["refused_reasons"] == {"secret:*": "not_allowed", ":x": "invalid"}
        # order:event is held: subscribing again is a no-op ok, leaving it works
        reply = await request(ws, "unsubscribe", {"topic": "order", "type": "event"})
        assert reply["status"] == "ok"


async def test_bad_tokens_get_401_before_the_upgrade(shared_edge: SharedEdge) -> None:
    base = shared_edge.edge.url + "/ws"
    for url, code in (
        (base, "token_invalid"),
        (base + "?token=garbage", "token_invalid"),
        (base + "?token=" + token(ttl=-100), "token_expired"),
    ):
        status, body = http_get(url)
        assert status == 401, url
        assert json.loads(body)["error"]["code"] == code
    forged = TokenIssuer("HS256", "x" * 40).issue("u", "d", 600).token
    not_yet = TokenIssuer("HS256", SECRET).issue("u", "d", 600, now=time.time() + 3600).token
    for bad in (forged, not_yet):
        status, _ = http_get(base + "?token=" + bad)
        assert status == 401
    status, _ = http_get(base, headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_bad_since_is_400(shared_edge: SharedEdge) -> None:
    status, body = http_get(shared_edge.edge.url + f"/ws?token={token()}&since=0:abc")
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_since"


async def test_every_action_gets_one_ok_reply(shared_edge: SharedEdge) -> None:
    ws, _ = await connect(shared_edge.edge, token=token())
    async with ws:
        for request_id, action, params in [
            ("a", "ping", None),
            ("b", "subscribe", {"topic": "order", "type": "event"}),
            ("c", "subscribe", {"topic": "quotes"}),
            ("d", "unsubscribe", {"topic": "order", "type": "event"}),
            ("e", "join", {"room": "1001"}),
            ("f", "leave", {"room": "1001"}),
        ]:
            reply = await request(ws, action, params, request_id)
            assert reply["status"] == "ok", reply
            assert reply["action"] == action
            assert reply["error_message"] == ""
            assert isinstance(reply["timestamp"], int)
            assert set(reply) == {"request_id", "action", "status", "error_message", "timestamp"}


async def test_bad_requests_fail_with_a_useful_message(shared_edge: SharedEdge) -> None:
    ws, _ = await connect(shared_edge.edge, token=token(rooms=["1001"], topics=["order"]))
    async with ws:
        cases = [
            ("{not json", "invalid JSON"),
            ("[1, 2]", "JSON object"),
            ('"text"', "JSON object"),
            (json.dumps({"request_id": "x", "action": "dance"}), "unknown action"),
            (json.dumps({"request_id": "x", "action": "subscribe", "params": {}}), "topic"),
            (
                json.dumps({"request_id": "x", "action": "subscribe", "params": {"topic": ""}}),
                "topic",
            ),
            (json.dumps({"request_id": "x", "action": "subscribe"}), "params"),
            (
                json.dumps({"request_id": "x", "action": "subscribe", "params": {"topic": "nope"}}),
                "not allowed",
            ),
            (
                json.dumps({"request_id": "x", "action": "join", "params": {"room": "2002"}}),
                "not allowed",
            ),
            (json.dumps({"request_id": "x", "action": "join", "params": {"room": " "}}), "room"),
            (
                json.dumps(
                    {
                        "request_id": "x",
                        "action": "subscribe",
                        "params": {"topic": "order", "since": "bad"},
                    }
                ),
                "since",
            ),
        ]
        for frame, expected in cases:
            await ws.send(frame)
            reply = await recv_json(ws)
            assert reply["status"] == "fail", (frame, reply)
            assert expected in reply["error_message"], (frame, reply)
        # the connection is still fine afterwards
        assert (await request(ws, "ping", request_id="after"))["status"] == "ok"


async def test_limits_on_subscriptions_and_rooms(shared_edge: SharedEdge) -> None:
    ws, _ = await connect(shared_edge.edge, token=token(), roomIds="1,2")
    async with ws:
        for i in range(3):  # MAX_SUBSCRIPTIONS=3 on this edge
            assert (await request(ws, "subscribe", {"topic": f"t{i}"}, f"s{i}"))["status"] == "ok"
        reply = await request(ws, "subscribe", {"topic": "t9"}, "s9")
        assert reply["status"] == "fail"
        assert "too many subscriptions" in reply["error_message"]
        reply = await request(ws, "join", {"room": "3"}, "j3")
        assert reply["status"] == "fail"
        assert "too many rooms" in reply["error_message"]
        assert (await request(ws, "leave", {"room": "1"}, "l1"))["status"] == "ok"
        assert (await request(ws, "join", {"room": "3"}, "j3b"))["status"] == "ok"


async def test_oversized_frame_closes_with_1009(shared_edge: SharedEdge) -> None:
    ws, _ = await connect(shared_edge.edge, token=token())
    await ws.send("x" * 70_000)  # over the 64 KiB default
    try:
        while True:
            await recv_json(ws)
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code == 1009


async def test_websocket_ping_frames_are_answered(shared_edge: SharedEdge) -> None:
    ws, _ = await connect(shared_edge.edge, token=token())
    async with ws:
        pong = await ws.ping(b"hello")
        await __import__("asyncio").wait_for(pong, 10)
        # and the request stream still works in order
        await ws.send(json.dumps({"request_id": "p", "action": "ping"}))
        assert (await recv_reply(ws, "p"))["status"] == "ok"
