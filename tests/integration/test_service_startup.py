"""Every service as its own process: settings checked at start, health endpoints mounted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from roomcast_harness.procs import free_port
from roomcast_harness.services import MODULES, PORT_SETTINGS, ServiceProcess
from tests.conftest import Infra

SERVICES = sorted(MODULES)


def _run_and_fail(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    return subprocess.run(
        [sys.executable, "-m", MODULES[service]],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_bad_port_stops_the_service_with_one_line(service: str) -> None:
    setting = PORT_SETTINGS[service]
    result = _run_and_fail(service, {setting: "not-a-port"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert setting in lines[0]


@pytest.mark.parametrize(
    ("service", "workers"), [*((s, 1) for s in SERVICES), ("edge", 2), ("publisher", 2)]
)
def test_busy_port_stops_the_service_with_one_line_naming_the_setting(
    service: str, workers: int
) -> None:
    setting = PORT_SETTINGS[service]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # No Redis nor Kafka here: the port is checked before the service reaches them,
        # and before a supervisor starts any worker.
        env = {
            setting: str(port),
            setting.replace("__PORT", "__HOST"): "127.0.0.1",
            "ROOMCAST_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
            "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        }
        if workers > 1:
            env[setting.replace("__PORT", "__WORKERS")] = str(workers)
        result = _run_and_fail(service, env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"roomcast-{service}: port {port} is already in use (127.0.0.1:{port}); "
        f"set {setting} to another port"
    )


@pytest.mark.parametrize("service", ["auth", "edge"])
def test_production_without_secret_stops_the_service(service: str) -> None:
    result = _run_and_fail(service, {"ROOMCAST_MODE": "production"})
    assert result.returncode == 2
    assert "ROOMCAST_JWT__SECRET" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _get(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return response.status, response.read(), response.headers.get("Content-Type", "")


@pytest.mark.parametrize("service", SERVICES)
def test_service_links_do_not_move_the_port(
    service: str, infra: Infra, topic: str, tmp_path: Path
) -> None:
    port = free_port()
    links = {
        "ROOMCAST_PORT": f"tcp://127.0.0.1:{free_port()}",
        "ROOMCAST_SERVICE_HOST": "10.0.0.1",
        "ROOMCAST_SERVICE_PORT": "1",
        "ROOMCAST_AUTH_PORT": "tcp://10.0.0.2:1",
        "ROOMCAST_AUTH_SERVICE_PORT": "1",
        "ROOMCAST_EDGE_PORT": "tcp://10.0.0.3:1",
        "ROOMCAST_PUBLISHER_PORT": "tcp://10.0.0.4:1",
        "ROOMCAST_PUBLISHER_PORT_8082_TCP_PORT": "1",
    }
    proc = ServiceProcess(service, {**infra.env(topic), **links}, tmp_path, port=port)
    proc.start()
    try:
        status, body, _ = _get(f"http://127.0.0.1:{port}/health")
        assert status == 200
        assert body == b'{"status":"healthy"}'
        assert _get(f"http://127.0.0.1:{port}/livez")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        status, _body, content_type = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
    finally:
        assert proc.stop() == 0
