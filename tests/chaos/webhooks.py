"""A webhook receiver that fails some deliveries on purpose and checks what it gets.

Every delivery must carry a valid signature, and a retried delivery the same events
under the same id. Deduplicated by id, each room's `room_occupied` and `room_vacated`
must balance once every client has left.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SIGNATURE_HEADER = "X-Roomcast-Signature"


@dataclass
class WebhookReceiver:
    secret: str
    seed: int
    failure_rate: float = 0.2
    deliveries: int = 0
    refused: int = 0
    bad_signatures: int = 0
    changed_bodies: list[str] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.deliveries += 1
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            self.bad_signatures += 1
            return web.Response(status=400)
        body = json.loads(raw)
        delivery_id, events = str(body["id"]), list(body["events"])
        seen = self.events.get(delivery_id)
        if seen is not None and seen != events:
            self.changed_bodies.append(delivery_id)
        self.events[delivery_id] = events
        if self._rng.random() < self.failure_rate:
            self.refused += 1
            return web.Response(status=500)  # the sender must retry it, same id
        return web.Response(status=204)

    def balance(self) -> dict[str, int]:
        """Per room, occupied minus vacated over the distinct deliveries (0: balanced)."""
        net: Counter[str] = Counter()
        for events in self.events.values():
            for event in events:
                if event.get("name") == "room_occupied":
                    net[str(event["room"])] += 1
                elif event.get("name") == "room_vacated":
                    net[str(event["room"])] -= 1
        return {room: n for room, n in net.items() if n}
