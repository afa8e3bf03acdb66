"""Toxiproxy on a loopback port of its own: TCP proxies that misbehave on request.

Tests put a proxy between their clients and a service, then add toxics to make the
connection behave like a real network: ``slicer`` (data cut into tiny segments with
delays between them), ``latency`` and ``bandwidth``. The server is built once from its
Go module by ``scripts/ensure-toxiproxy.sh`` and cached under
``~/.cache/roomcast/toxiproxy/<version>/``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from roomcast_harness.go_tools import ensure_go_tool
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for

TOXIPROXY_VERSION = "v2.5.0"

Stream = Literal["upstream", "downstream"]  # client -> service, service -> client


class ToxiproxyError(RuntimeError):
    """The server refused a request (its status and message are in the text)."""


def ensure_toxiproxy() -> Path:
    """Path of the cached server binary, building it first if needed (a minute, once)."""
    return ensure_go_tool("toxiproxy", TOXIPROXY_VERSION, "toxiproxy-server")


@dataclass(frozen=True)
class Toxic:
    """One toxic as the API names it; ``attributes`` are the type's own settings."""

    name: str
    type: str
    stream: Stream
    attributes: dict[str, int]
    toxicity: float = 1.0

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        }


def slicer(stream: Stream, average_size: int, size_variation: int = 0, delay_us: int = 0) -> Toxic:
    """Data cut into segments of about average_size bytes, delay_us between them."""
    return Toxic(
        f"slicer_{stream}",
        "slicer",
        stream,
        {"average_size": average_size, "size_variation": size_variation, "delay": delay_us},
    )


def latency(stream: Stream, latency_ms: int, jitter_ms: int = 0) -> Toxic:
    """Every piece of data held back latency_ms (plus or minus jitter_ms)."""
    return Toxic(
        f"latency_{stream}", "latency", stream, {"latency": latency_ms, "jitter": jitter_ms}
    )


def bandwidth(stream: Stream, rate_kb: int) -> Toxic:
    """At most rate_kb kilobytes per second."""
    return Toxic(f"bandwidth_{stream}", "bandwidth", stream, {"rate": rate_kb})


@dataclass(frozen=True)
class Proxy:
    """One proxy: clients connect to ``port``, the proxy connects to ``upstream``."""

    server: ToxiproxyServer = field(repr=False)
    name: str
    port: int
    upstream: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, toxic: Toxic) -> None:
        self.server.request("POST", f"/proxies/{self.name}/toxics", toxic.body())

    def remove(self, toxic_name: str) -> None:
        self.server.request("DELETE", f"/proxies/{self.name}/toxics/{toxic_name}")

    def toxics(self) -> list[str]:
        listed = self.server.request("GET", f"/proxies/{self.name}/toxics")
        return [str(t["name"]) for t in listed]

    def clear(self) -> None:
        for name in self.toxics():
            self.remove(name)


class ToxiproxyServer:
    """One toxiproxy-server process with its HTTP API on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "toxiproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = ensure_toxiproxy()
        argv = [str(binary), "-host", "127.0.0.1", "-port", str(self.port)]
        self._proc = spawn(argv, self.log_path)

        def ready() -> bool:
            if self._exited():
                return True
            try:
                self.request("GET", "/proxies")
            except (OSError, ToxiproxyError):
                return False
            return True

        try:
            wait_for(ready, timeout, "toxiproxy")
        except TimeoutError:
            self.stop()
            raise
        if self._exited():
            raise RuntimeError(f"toxiproxy exited:\n{tail(self.log_path)}")

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.api + path, data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ToxiproxyError(f"{method} {path}: {exc.code} {detail}") from None
        return json.loads(text) if text.strip() else None

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy to upstream ("host:port") on a free loopback port."""
        created = self.request(
            "POST",
            "/proxies",
            {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": True},
        )
        port = int(str(created["listen"]).rpartition(":")[2])
        return Proxy(self, name, port, upstream)

    def reset(self) -> None:
        """Every proxy enabled again and every toxic gone."""
        self.request("POST", "/reset")

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=10)
            self._proc = None

    def __enter__(self) -> ToxiproxyServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
