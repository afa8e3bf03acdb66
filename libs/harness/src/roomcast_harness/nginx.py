"""nginx from Debian as the reverse proxy in front of edges, on a free loopback port.

Its configuration is generated and keeps nginx's defaults where a deployment would
(`proxy_buffering on`, HTTP/1.0 to the upstream). Two kinds of site: one that passes
WebSocket upgrades on, and one that does not, like the proxies that break WebSockets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from roomcast_harness.debian import ensure_program
from roomcast_harness.procs import free_port, port_open, spawn, stop, tail, wait_for

# Debian puts it in /usr/sbin, which a user's PATH may lack.
SBIN = "/usr/sbin:/usr/local/sbin"


def _nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path=SBIN)


def ensure_nginx_installed() -> str:
    """Path of nginx, installing Debian's package first when it is missing."""
    found = _nginx()
    if found:
        return found
    try:
        return ensure_program("nginx", "nginx")
    except RuntimeError:  # installed, but not on this PATH
        found = _nginx()
        if found is None:
            raise
        return found


def _config(prefix: Path, port: int, upstreams: Sequence[int], websocket: bool) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
    upgrade = (
        """
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;"""
        if websocket
        else ""
    )
    # As root nginx would hand its workers to `nobody`, who cannot write here.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"  {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
  access_log {prefix / "access.log"};
{temp}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream edges {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://edges;
      # An edge that is draining or full answers 503: try the next one, as a
      # load balancer in front of several edges would.
      proxy_next_upstream error timeout http_503;{upgrade}
    }}
  }}
}}
"""


class NginxProxy:
    """nginx proxying every path to `upstreams` (edge ports), as its own process."""

    def __init__(self, workdir: Path, upstreams: Sequence[int], *, websocket: bool) -> None:
        self.prefix = workdir
        self.port = free_port()
        self.upstreams = list(upstreams)
        self.websocket = websocket
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = ensure_nginx_installed()
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(_config(self.prefix, self.port, self.upstreams, self.websocket))
        argv = [
            binary,
            "-p",
            str(self.prefix),
            "-c",
            str(conf),
            "-e",
            str(self.prefix / "error.log"),
        ]
        self._proc = spawn(argv, self.prefix / "nginx.out", cwd=self.prefix)
        proc = self._proc

        def up() -> bool:
            return proc.poll() is not None or port_open("127.0.0.1", self.port)

        wait_for(up, timeout, "nginx listening")
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited at start:\n{self.logs()}")

    def logs(self, lines: int = 40) -> str:
        return tail(self.prefix / "error.log", lines) + tail(self.prefix / "nginx.out", lines)

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=10.0)
            self._proc = None

    def __enter__(self) -> NginxProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
