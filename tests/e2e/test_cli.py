"""The `roomcast` command-line tool against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import aiohttp

from roomcast_client import publish
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


def test_load_publishes_at_its_rate_and_counts_every_delivery(stack: Stack) -> None:
    room = f"load-{uuid.uuid4().hex[:6]}"
    result = _roomcast(stack, "load", "-n", "4", "--room", room, "--rate", "20", "--duration", "2")
    assert result.returncode == 0, result.stderr
    assert f"mode: publish 20 msg/s for 2 s to room {room} through" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["mode"] == "publish"
    assert summary["published"] == 40
    assert summary["publish_failures"] == 0
    # Every message reached each of the four connections exactly once.
    assert summary["expected"] == 4 * 40
    assert summary["received"] == 4 * 40
    assert summary["missing"] == 0
    assert summary["complete"] is True
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["max"]


async def test_load_listen_mode_counts_what_others_publish(stack: Stack) -> None:
    room = f"listen-{uuid.uuid4().hex[:6]}"
    argv = ["load", "-n", "2", "--room", room, "--rate", "0", "--duration", "6"]
    loader = subprocess.Popen(
        [sys.executable, "-m", "roomcast_client", *argv],
        env=_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert loader.stderr is not None
        mode = loader.stderr.readline()
        assert mode.startswith(f"mode: listen only (--rate 0): 2 connections on {stack.ws_url(0)}")
        # "connected 2/2" ends the connecting phase: from then on nothing is missed.
        # (Progress is redrawn with a carriage return, which text mode reads as a line end.)
        line = loader.stderr.readline()
        while "connected 2/2" not in line:
            assert line, "load ended before it connected"
            line = loader.stderr.readline()
        # In-process, so the three take milliseconds of the six seconds it listens.
        async with aiohttp.ClientSession() as session:
            for n in range(3):
                await publish(session, stack.publisher.url, {"n": n}, room=room)
        out, err = loader.communicate(timeout=60)
    finally:
        if loader.poll() is None:
            loader.kill()
    assert loader.returncode == 0, err
    summary = json.loads(out)
    assert summary["mode"] == "listen"
    assert summary["received"] == 2 * 3
    assert "published" not in summary


def test_load_refuses_a_bad_rate(stack: Stack) -> None:
    result = _roomcast(stack, "load", "--rate", "-5")
    assert result.returncode == 2
    assert "--rate: must be between 0 and 100000" in result.stderr
