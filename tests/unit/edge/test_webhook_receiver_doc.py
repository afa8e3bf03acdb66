"""The receiver the ws-edge README shows does what the README says: it checks the
signature, refuses deliveries outside its replay window and acts on each id once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from roomcast_edge.domain import webhooks

README = Path(__file__).parents[3] / "services" / "ws-edge" / "README.md"
SECRET = "the value of ROOMCAST_WEBHOOKS__SECRET"


def _receiver() -> dict[str, Any]:
    """The README's example, run without its last line (which serves forever)."""
    text = README.read_text()
    intro = text.index("A receiver, checking the signature, the window and the `id`:")
    block = re.search(r"```python\n(.*?)```", text[intro:], re.S)
    assert block is not None
    code = block.group(1).replace("web.run_app(app, port=9000)", "")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


async def _post(client: TestClient[Any, Any], entry_id: str, time_ms: int) -> int:
    events = b'[{"name": "member_added", "room": "1001", "user_id": "u1"}]'
    raw = webhooks.body(entry_id, time_ms, events)
    headers = {webhooks.SIGNATURE_HEADER: webhooks.signature(SECRET, raw)}
    async with client.post("/roomcast", data=raw, headers=headers) as response:
        return response.status


async def test_the_documented_receiver_refuses_replays(capsys: pytest.CaptureFixture[str]) -> None:
    example = _receiver()
    app: web.Application = example["app"]
    window_ms: int = example["WINDOW_MS"]
    async with TestClient(TestServer(app)) as client:
        now = int(time.time() * 1000)
        assert await _post(client, f"{now}-0", now) == 204
        assert capsys.readouterr().out.count("member_added") == 1
        # A retry, or a replay inside the window: acknowledged, not acted on again.
        assert await _post(client, f"{now}-0", now) == 204
        assert capsys.readouterr().out == ""
        # A replay older than the window, or dated far ahead: refused.
        old = now - window_ms - 1000
        assert await _post(client, f"{old}-0", old) == 400
        ahead = now + 3_600_000
        assert await _post(client, f"{ahead}-0", ahead) == 400
        assert capsys.readouterr().out == ""
        # A forged signature never gets that far.
        async with client.post("/roomcast", data=b"{}") as response:
            assert response.status == 401
