"""The `roomcast` command-line tool against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.e2e.conftest import Stack


def _env(stack: Stack) -> dict[str, str]:
    return {
        **os.environ,
        "ROOMCAST_AUTH_URL": stack.auth.url,
        "ROOMCAST_EDGE_URL": stack.ws_url(0),
        "ROOMCAST_PUBLISHER_URL": stack.publisher.url,
    }


def _roomcast(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomcast_client", *args],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_listen_and_publish(stack: Stack) -> None:
    token = _roomcast(stack, "token", "--device", "cli-device")
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a JWT

    room = f"cli-{uuid.uuid4().hex[:6]}"
    listener = subprocess.Popen(
        [sys.executable, "-m", "roomcast_client", "listen", "--room", room, "--count", "2"],
        env=_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stderr is not None
        connected = json.loads(listener.stderr.readline())  # printed once connected
        assert connected["action"] == "connected"
        assert connected["rooms"] == [room]
        first = _roomcast(stack, "publish", "--room", room, "--payload", '{"n": 1}')
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stdout)
        assert set(answer) >= {"message_id", "position", "receive_time"}
        second = _roomcast(stack, "publish", "--room", room, "--text", "two")
        assert second.returncode == 0, second.stderr
        out, _ = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["payload"] for line in lines] == [{"n": 1}, "two"]
    assert lines[0]["meta"]["message_id"] == answer["message_id"]
    assert listener.returncode == 0


def test_bad_input_is_a_clear_error(stack: Stack) -> None:
    result = _roomcast(stack, "publish", "--payload", "{not json")
    assert result.returncode == 1
    assert result.stderr.startswith("roomcast: ")
    refused = subprocess.run(
        [sys.executable, "-m", "roomcast_client", "listen", "--token", "garbage"],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "401" in refused.stderr
