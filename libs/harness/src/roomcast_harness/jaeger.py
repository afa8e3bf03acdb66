"""A real Jaeger v2 (all-in-one, memory storage) on loopback ports of its own.

The binary is built once from Jaeger's Go module by ``scripts/ensure-jaeger.sh`` and
cached under ``~/.cache/roomcast/jaeger/<version>/``. Jaeger is given a config file
naming every port it opens, so several can run side by side (tests, ``make run``)
without meeting on 4317/4318/16686.

A binary built from the Go module carries no UI assets (the official images add them
from a separate web build), so its UI would only show a placeholder. Unless
``JAEGER_UI_ASSETS`` names a directory with a Jaeger UI build, the query service is
pointed at ``jaeger_ui/``: a small trace view that reads Jaeger's own query API and
answers the same ``/trace/<id>`` and ``/search`` addresses.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from roomcast_harness.go_tools import ensure_go_tool
from roomcast_harness.procs import free_port, port_open, spawn, stop, tail, wait_for

JAEGER_VERSION = "v1.76.0"
# The ports a stock all-in-one uses; `make run` takes them when they are free.
STANDARD_PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "ui": 16686, "query_grpc": 16685}


def ensure_jaeger() -> Path:
    """Path of the cached Jaeger binary, building it first if needed (minutes, once)."""
    return ensure_go_tool("jaeger", JAEGER_VERSION, "jaeger")


def ui_assets() -> Path:
    """The UI directory Jaeger serves: a real Jaeger UI build if named, else our trace view."""
    named = os.environ.get("JAEGER_UI_ASSETS")
    if named:
        return Path(named)
    return Path(str(resources.files("roomcast_harness").joinpath("jaeger_ui")))


def _port(name: str, standard: bool) -> int:
    wanted = STANDARD_PORTS[name]
    if standard and not port_open("127.0.0.1", wanted):
        return wanted
    return free_port()


class JaegerServer:
    """One Jaeger process; stop() or kill() it, start() again for a fresh, empty one."""

    def __init__(self, workdir: Path, *, standard_ports: bool = False) -> None:
        self.workdir = workdir
        self.ports = {name: _port(name, standard_ports) for name in STANDARD_PORTS}
        self.log_path = workdir / "jaeger.log"
        self.config_path = workdir / "jaeger.yaml"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ui']}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def otel_env(self, protocol: str = "http/protobuf") -> dict[str, str]:
        """The OTEL_* variables that send a service's spans here."""
        grpc = protocol == "grpc"
        return {
            "OTEL_SDK_DISABLED": "false",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_grpc_endpoint
            if grpc
            else self.otlp_http_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            # Spans leave within half a second, so a trace is whole soon after a push.
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }

    def _config(self) -> dict[str, Any]:
        ports = self.ports
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                # No self-metrics: they would listen on 8888 in every instance.
                "telemetry": {
                    "resource": {"service.name": "jaeger"},
                    "metrics": {"level": "none"},
                    "logs": {"level": "info"},
                },
            },
            "extensions": {
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{ports['ui']}"},
                    "grpc": {"endpoint": f"127.0.0.1:{ports['query_grpc']}"},
                    "ui": {"assets_path": str(ui_assets())},
                    # Jaeger tracing itself would export to localhost:4317, maybe into
                    # another Jaeger, and hold its shutdown up while nothing answers there.
                    "enable_tracing": False,
                },
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{ports['otlp_grpc']}"},
                        "http": {"endpoint": f"127.0.0.1:{ports['otlp_http']}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "200ms"}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }

    def start(self, timeout: float = 60.0) -> None:
        binary = ensure_jaeger()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML, and needs no YAML library here.
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self._proc = spawn([str(binary), "--config", str(self.config_path)], self.log_path)

        def ready() -> bool:
            return self._exited() or (
                port_open("127.0.0.1", self.ports["otlp_http"])
                and port_open("127.0.0.1", self.ports["otlp_grpc"])
                and self._get("/api/services") is not None
            )

        try:
            wait_for(ready, timeout, "jaeger")
        except TimeoutError:
            self.stop()
            raise
        if self._exited():
            raise RuntimeError(f"jaeger exited:\n{tail(self.log_path)}")

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def _get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.ui_url + path, timeout=2) as response:  # noqa: S310 - loopback
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=10)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: the collector vanishes the way a crashed one does."""
        if self._proc is not None:
            stop(self._proc, timeout=5, sig=9)
            self._proc = None

    def __enter__(self) -> JaegerServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
