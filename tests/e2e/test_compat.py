"""The compatible endpoints end to end: /get/token, /ws?token=&roomIds=, /push/new/score/message, /heartbeat."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import quote

import aiohttp
import websockets

from tests.e2e.conftest import Stack


async def test_compat_flow(stack: Stack) -> None:
    room = str(uuid.uuid4().int % 100000)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{stack.auth.url}/get/token", params={"deviceId": "compat-device", "isLogin": "false"}
        ) as response:
            assert response.status == 200
            token = (await response.json())["data"]
        async with session.get(f"{stack.auth.url}/heartbeat", params={"token": token}) as response:
            assert response.status == 200
            assert await response.json() == {}

        room_ids = quote(f"{room}, {room} ,other", safe=",")
        url = f"{stack.ws_url(0)}?token={token}&roomIds={room_ids}"
        async with websockets.connect(url) as ws:
            connected = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert connected["action"] == "connected"
            assert connected["status"] == "ok"
            assert connected["rooms"] == [room, "other"]

            await ws.send(
                json.dumps(
                    {
                        "request_id": "r1",
                        "timestamp": 1,
                        "action": "subscribe",
                        "params": {"topic": "order", "type": "event"},
                    }
                )
            )
            reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert reply["request_id"] == "r1"
            assert reply["status"] == "ok"
            assert reply["error_message"] == ""

            async with session.post(
                f"{stack.publisher.url}/push/new/score/message",
                json={"message": "2:1 in the 90th", "roomId": room},
            ) as response:
                assert response.status == 200
                assert await response.json() == {"message": "message sent"}
            push = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert push["type"] == "score"
            assert push["room"] == room
            assert push["payload"] == "2:1 in the 90th"
            assert "topic" not in push
            assert set(push["meta"]) >= {"receive_time", "message_id", "position"}

        async with session.post(
            f"{stack.publisher.url}/push/new/score/message", json={}
        ) as response:
            assert response.status == 400
            assert "error" in await response.json()
        async with session.get(
            f"{stack.auth.url}/heartbeat", params={"token": "garbage"}
        ) as response:
            assert response.status == 401
            assert await response.json() == {"data": "token error"}
