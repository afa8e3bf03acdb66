"""`make run` (`roomcast-harness stack`): where it listens, a busy port, what it leaves behind.

Each test runs the stack as `make run BUS=redis` runs it, as its own process, with
TMPDIR pointed at a directory of the test's own, so what it leaves there is seen.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for

SECRET = "stack-secret-0123456789abcdefghijklmnopq"


def _env(tmp: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")},
        "TMPDIR": str(tmp),
        "OTEL_SDK_DISABLED": "true",
        **{f"ROOMCAST_{name}__PORT": str(port) for name, port in ports.items()},
        **extra,
    }


def _ports() -> dict[str, int]:
    return {name: free_port() for name in ("AUTH", "EDGE", "PUBLISHER")}


def _listening(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _harness() -> str:
    return str(Path(sys.executable).parent / "roomcast-harness")


@pytest.mark.parametrize(
    ("bind", "expected"), [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")], ids=["default", "all"]
)
def test_the_stack_listens_where_told_and_removes_its_temp_dir(
    tmp_path: Path, bind: str | None, expected: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ports = _ports()
    argv = [_harness(), "stack", "--bus", "redis", *(["--host", bind] if bind else [])]
    log = tmp_path / "stack.log"
    proc = spawn(argv, log, env=_env(tmp, ports, ROOMCAST_BUS__STREAM="stack-startup"))
    try:
        wait_for(
            lambda: proc.poll() is not None or "roomcast is up" in log.read_text(errors="replace"),
            120,
            "the stack's banner",
        )
        assert proc.poll() is None, tail(log)
        for port in ports.values():
            assert _listening(port) == {expected}, tail(log)
        # The development secret on every interface deserves a warning; loopback does not.
        assert ("WARNING: listening on 0.0.0.0" in log.read_text()) == (bind == "0.0.0.0")
        [workdir] = tmp.iterdir()
        assert workdir.name.startswith("roomcast-stack-")
        assert (workdir / "logs" / "auth.log").exists()
        assert stop(proc, timeout=60, sig=signal.SIGINT) == 0, tail(log)
    finally:
        stop(proc, timeout=60)
    assert list(tmp.iterdir()) == [], "the stack left its temp dir behind"
    assert "stopped." in log.read_text()


def test_a_busy_port_is_one_line_naming_its_setting(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ports = _ports()
    log = tmp_path / "stack.log"
    with socket.create_server(("127.0.0.1", ports["EDGE"])):
        proc = spawn([_harness(), "stack", "--bus", "redis"], log, env=_env(tmp, ports))
        try:
            wait_for(lambda: proc.poll() is not None, 60, "the stack to give up")
        finally:
            stop(proc)
    assert proc.returncode == 1
    out = log.read_text()
    [line] = out.strip().splitlines()
    assert line.startswith(
        f"roomcast-harness: port {ports['EDGE']} (edge) is already in use on 127.0.0.1; "
        "set ROOMCAST_EDGE__PORT to another port, e.g. ROOMCAST_EDGE__PORT="
    )
    assert line.endswith(" make run")
    # Told before anything started, and nothing left behind.
    assert "starting redis" not in out
    assert list(tmp.iterdir()) == []


def test_infra_removes_its_temp_dir_too(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "infra.log"
    # An existing Kafka is named (never used here), so only Redis starts.
    env = _env(tmp, {}, ROOMCAST_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1")
    proc = spawn([_harness(), "infra"], log, env=env)
    try:
        wait_for(
            lambda: proc.poll() is not None or "ROOMCAST_REDIS__URL=" in log.read_text(),
            60,
            "infra's addresses",
        )
        assert proc.poll() is None, tail(log)
        [workdir] = tmp.iterdir()
        assert workdir.name.startswith("roomcast-infra-")
        assert stop(proc, timeout=60, sig=signal.SIGINT) == 0, tail(log)
    finally:
        stop(proc, timeout=60)
    assert list(tmp.iterdir()) == []


def test_a_service_that_fails_at_start_is_shown_once(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "stack.log"
    env = _env(tmp, _ports(), ROOMCAST_EDGE__MAX_ROOMS="many")
    proc = spawn([_harness(), "stack", "--bus", "redis"], log, env=env)
    try:
        wait_for(lambda: proc.poll() is not None, 120, "the stack to give up")
    finally:
        stop(proc)
    assert proc.returncode == 1
    out = log.read_text()
    # Every service checks every setting, so auth, started first, stops: its own line,
    # copied from its log once, then the stack's pointer to it.
    assert out.count("ROOMCAST_EDGE__MAX_ROOMS") == 1, out
    assert "roomcast-harness: auth did not start; see its log above" in out
    assert "Traceback" not in out
    assert list(tmp.iterdir()) == []
