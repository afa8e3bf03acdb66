"""Several processes of one service on one port: a supervisor and its workers.

With `WORKERS` above 1 the service's command becomes a supervisor that starts that
many copies of itself as workers. Each worker binds the service's port with
SO_REUSEPORT (the kernel spreads connections among them) and a Unix socket of its
own in a shared folder, on which its siblings ask for its /metrics and /readyz, so
that any worker answers those for all. The supervisor starts a worker that died
again within a second, forwards SIGTERM to all of them (each drains as a single
process would) and exits when they have.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Set in a worker's environment by its supervisor.
WORKER_INDEX_ENV = "ROOMCAST_WORKER_INDEX"
WORKER_DIR_ENV = "ROOMCAST_WORKER_DIR"
WORKER_COUNT_ENV = "ROOMCAST_WORKER_COUNT"
# A worker that dies is started again after at least this long (a crash loop stays slow).
RESTART_DELAY = 1.0
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


def worker_count(value: object) -> int:
    """`auto` (the CPUs this process may run on) or a whole number of at least 1."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    count = int(str(value))
    if count < 1:
        raise ValueError(f"must be at least 1, got {count}")
    return count


@dataclass(frozen=True)
class WorkerPlace:
    """Where a worker stands among its siblings (None when the service runs alone)."""

    index: int
    count: int
    folder: Path

    @property
    def socket(self) -> Path:
        return socket_path(self.folder, self.index)

    def siblings(self) -> list[Path]:
        return [socket_path(self.folder, i) for i in range(self.count) if i != self.index]


def socket_path(folder: Path, index: int) -> Path:
    return folder / f"worker-{index}.sock"


def this_worker() -> WorkerPlace | None:
    index, folder = os.environ.get(WORKER_INDEX_ENV), os.environ.get(WORKER_DIR_ENV)
    if index is None or folder is None:
        return None
    return WorkerPlace(int(index), int(os.environ.get(WORKER_COUNT_ENV, "1")), Path(folder))


def _die_with_parent() -> None:
    # A worker never outlives its supervisor, even one killed with SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, service: str, argv: Sequence[str], count: int, grace: float) -> None:
        self.service = service
        self.argv = list(argv)
        self.count = count
        self.grace = grace
        self.folder = Path(tempfile.mkdtemp(prefix=f"roomcast-{service}-workers-"))
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.died_at: list[float] = [0.0] * count
        self.stopping = False

    def _start(self, index: int) -> None:
        env = {
            **os.environ,
            WORKER_INDEX_ENV: str(index),
            WORKER_DIR_ENV: str(self.folder),
            WORKER_COUNT_ENV: str(self.count),
        }
        with contextlib.suppress(FileNotFoundError):
            socket_path(self.folder, index).unlink()
        self.procs[index] = subprocess.Popen(self.argv, env=env, preexec_fn=_die_with_parent)

    def run(self) -> int:
        """Until SIGTERM or SIGINT, then until every worker has exited."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        print(f"roomcast-{self.service}: {self.count} workers", file=sys.stderr, flush=True)
        try:
            for index in range(self.count):
                self._start(index)
            while not self.stopping:
                self._restart_dead()
                time.sleep(POLL_SECONDS)
            return self._wait_all()
        finally:
            for path in self.folder.glob("*"):
                with contextlib.suppress(OSError):
                    path.unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            if not self.died_at[index]:
                self.died_at[index] = now
                print(
                    f"roomcast-{self.service}: worker {index} exited ({proc.returncode}), "
                    "starting it again",
                    file=sys.stderr,
                    flush=True,
                )
            if now - self.died_at[index] >= RESTART_DELAY:
                self.died_at[index] = 0.0
                self._start(index)

    def _stop(self, signum: int, _frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    def _wait_all(self) -> int:
        deadline = time.monotonic() + self.grace
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0


def this_command() -> list[str]:
    """The command that started this process, to start workers the same way."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    return [sys.executable, *sys.argv]


def supervise(service: str, count: int, grace: float) -> None:
    """Run `count` workers of this very command until SIGTERM; never returns."""
    raise SystemExit(Supervisor(service, this_command(), count, grace).run())
