"""A real redis-server (Debian's package) on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from roomcast_harness.procs import free_port, port_open, spawn, stop, tail, wait_for


def ensure_redis_installed() -> str:
    """Path of redis-server, installing the Debian package when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("roomcast-harness: installing redis-server (Debian package)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "redis-server"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("redis-server is still missing after apt-get install")
    return found


class RedisServer:
    """One redis-server process; stop() and start() again keep the same port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        binary = ensure_redis_installed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
        ]  # fmt: skip
        self._proc = spawn(argv, self.log_path)
        try:
            wait_for(lambda: self._exited() or port_open("127.0.0.1", self.port), timeout, "redis")
        except TimeoutError:
            self.stop()
            raise
        if self._exited():
            raise RuntimeError(f"redis-server exited:\n{tail(self.log_path)}")

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=10)
            self._proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
