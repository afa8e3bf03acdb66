"""Apache Kafka in KRaft mode (one combined broker+controller) run with the machine's Java.

The broker's jars come from Maven Central through the machine's Maven, once, into
``~/.cache/roomcast/kafka-<version>/libs``; later runs start straight from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from importlib import resources
from pathlib import Path

from roomcast_harness.kafka_secure import SecureListener
from roomcast_harness.procs import free_port, port_open, spawn, stop, tail, wait_for

KAFKA_VERSION = "4.1.1"
_READY_LINE = "Kafka Server started"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "roomcast" / f"kafka-{KAFKA_VERSION}"


def _resource_text(name: str) -> str:
    return resources.files("roomcast_harness").joinpath("kafka", name).read_text()


def ensure_kafka_jars() -> Path:
    """Directory holding the broker's class path, resolving it with Maven if needed."""
    libs = cache_dir() / "libs"
    marker = cache_dir() / "complete"
    if marker.exists():
        return libs
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to run Apache Kafka but is not on PATH")
    print(f"roomcast-harness: resolving Apache Kafka {KAFKA_VERSION} with Maven", file=sys.stderr)
    work = cache_dir()
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_resource_text("pom.xml"))
    shutil.rmtree(libs, ignore_errors=True)
    subprocess.run(
        [
            "mvn", "-q", "-B",
            "-f", str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )  # fmt: skip
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise RuntimeError("Maven finished but the Kafka jars are missing")
    (work / "log4j2.yaml").write_text(_resource_text("log4j2.yaml"))
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java is needed to run Apache Kafka but is not on PATH")
    return found


class KafkaBroker:
    """One single-node KRaft cluster; stop() and start() again keep port and data."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        partitions: int = 3,
        *,
        secure: SecureListener | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.controller_port = free_port()
        # A SASL_SSL listener besides the PLAINTEXT one, on secure_port.
        self.secure = secure
        self.secure_port = free_port() if secure else 0
        self.partitions = partitions
        self.log_path = workdir / "kafka.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.secure_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _properties(self) -> Path:
        data = self.workdir / "data"
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.secure:
            listeners += f",SASL_SSL://127.0.0.1:{self.secure_port}"
            protocols += ",SASL_SSL:SASL_SSL"
        text = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.controller_port}
listeners={listeners},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners={listeners}
listener.security.protocol.map={protocols}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions={self.partitions}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""
        if self.secure:
            text += self.secure.properties()
        path = self.workdir / "server.properties"
        path.write_text(text)
        return path

    def _java_argv(self, libs: Path, main: str, *args: str, heap: str = "512m") -> list[str]:
        log_config = cache_dir() / "log4j2.yaml"
        return [
            _java(),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        libs = ensure_kafka_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        properties = self._properties()
        if not self._formatted:
            cluster_id = uuid.uuid4().hex[:22]
            subprocess.run(
                self._java_argv(
                    libs, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                    "-c", str(properties),
                    *(self.secure.format_args() if self.secure else []), heap="256m",
                ),
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self._formatted = True
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = spawn(self._java_argv(libs, "kafka.Kafka", str(properties)), self.log_path)

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                return True
            with self.log_path.open("rb") as log:
                log.seek(offset)
                started = _READY_LINE.encode() in log.read()
            return started and port_open("127.0.0.1", self.port)

        try:
            wait_for(ready, timeout, "Kafka broker start", interval=0.2)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Kafka did not start:\n{tail(self.log_path)}") from None
        if not self.running:
            raise RuntimeError(f"Kafka exited at start:\n{tail(self.log_path)}")

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=timeout)
            self._proc = None

    def kill(self) -> None:
        """Stop without a clean shutdown, as a crash would."""
        if self._proc is not None:
            import signal

            stop(self._proc, timeout=5, sig=signal.SIGKILL)
            self._proc = None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
