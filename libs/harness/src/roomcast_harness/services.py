"""The roomcast services as real processes, the way a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for

MODULES = {"auth": "roomcast_auth", "edge": "roomcast_edge", "publisher": "roomcast_publisher"}
PORT_SETTINGS = {
    "auth": "ROOMCAST_AUTH__PORT",
    "edge": "ROOMCAST_EDGE__PORT",
    "publisher": "ROOMCAST_PUBLISHER__PORT",
}


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


class ServiceProcess:
    """`python -m roomcast_<service>` with the given environment, on its own port."""

    def __init__(
        self,
        service: str,
        env: Mapping[str, str],
        workdir: Path,
        port: int | None = None,
        name: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.service = service
        # where the harness reaches the service (its probes and url)
        self.host = host
        self.port = port or free_port()
        self.name = name or service
        self.log_path = workdir / f"{self.name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
        self.env = {
            **base,
            "ROOMCAST_LOG__FORMAT": "text",
            **env,
            PORT_SETTINGS[service]: str(self.port),
        }
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None
        return self._proc

    def start(self, timeout: float = 60.0, wait_ready: bool = True) -> None:
        self.launch()
        self.wait_ready(timeout, wait_ready)

    def launch(self) -> None:
        """Start the process without waiting; see wait_ready."""
        argv = [sys.executable, "-m", MODULES[self.service]]
        self._proc = spawn(argv, self.log_path, env=self.env)

    def wait_ready(self, timeout: float = 60.0, ready: bool = True) -> None:
        """Wait for /readyz (or only /livez) to answer 200; stop and raise if it does not."""
        probe = "/readyz" if ready else "/livez"

        def up() -> bool:
            return self.exited or http_status(self.url + probe) == 200

        try:
            wait_for(up, timeout, f"{self.name} {probe}", interval=0.1)
        except TimeoutError:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready:\n{logs}") from None
        if self.exited:
            code = self.process.returncode
            raise RuntimeError(f"{self.name} exited at start ({code}):\n{self.logs()}")

    @property
    def exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def logs(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self._proc is None:
            return None
        code = stop(self._proc, timeout=timeout)
        self._proc = None
        return code

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
