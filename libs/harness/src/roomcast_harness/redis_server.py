"""A real redis-server (Debian's package) on a free loopback port, optionally with a
password (requirepass) and TLS only (tls-port, certificates from roomcast_harness.certs)."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from roomcast_harness.debian import ensure_program
from roomcast_harness.procs import free_port, port_open, spawn, stop, tail, wait_for


def ensure_redis_installed() -> str:
    return ensure_program("redis-server", "redis-server")


@dataclass(frozen=True)
class RedisTls:
    """PEM files of the server's certificate and key, and of the CA clients are checked by."""

    cert: Path
    key: Path
    ca: Path
    # True: a client must show a certificate signed by `ca` (mutual TLS)
    client_certs: bool = False


class RedisServer:
    """One redis-server process; stop() and start() again keep the same port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        appendonly: bool = False,
        *,
        password: str = "",
        tls: RedisTls | None = None,
    ) -> None:
        self.workdir = workdir
        self.password = password
        self.tls = tls
        # The Redis Streams bus needs its appends to survive a restart: AOF, fsync
        # every second (an acknowledged append is written to the file first).
        self.appendonly = appendonly
        self.port = port or free_port()
        self.log_path = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The address without the password (clients are given it apart)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        binary = ensure_redis_installed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            *self._listen_args(),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self._proc = spawn(argv, self.log_path)
        try:
            wait_for(lambda: self._exited() or port_open("127.0.0.1", self.port), timeout, "redis")
        except TimeoutError:
            self.stop()
            raise
        if self._exited():
            raise RuntimeError(f"redis-server exited:\n{tail(self.log_path)}")

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        # TLS only: the plain port is closed.
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "yes" if self.tls.client_certs else "optional",
        ]  # fmt: skip

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=10)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, what is persisted is only what was written already."""
        if self._proc is not None:
            stop(self._proc, timeout=10, sig=signal.SIGKILL)
            self._proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
