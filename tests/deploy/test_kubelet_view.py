"""The kubelet's eye: run each rendered container's command as a local process.

The command, environment and ports come from the rendered Deployments (ConfigMap and
Secret references resolved); only the cluster's Redis/Kafka addresses are pointed at
this test's servers. The probes are followed as declared until every service is ready,
then each pod is stopped the kubelet's way: preStop, then SIGTERM, and it must exit
within terminationGracePeriodSeconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomcast_harness.procs import free_port, spawn, stop, tail
from tests.conftest import Infra
from tests.deploy.chart import COMPONENTS, Rendered, render
from tests.deploy.kubelet import PodPlan, http_probe, plan, run_probes

# Values the cluster defaults to, which the test replaces with its own servers.
CLUSTER_REDIS = "redis://redis:6379/0"
CLUSTER_KAFKA = "kafka:9092"
# The image's own environment (docker/base.Dockerfile), which a pod inherits.
IMAGE_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}


def render_with_free_ports() -> tuple[Rendered, dict[str, int]]:
    """The chart with test secrets and free ports (other test runs share this machine)."""
    ports = {key: free_port() for key in COMPONENTS}
    values: dict[str, object] = {f"services.{key}.port": port for key, port in ports.items()}
    values.update(
        {
            "secrets.existingSecret": "",
            "secrets.jwtSecret": "kubelet-test-secret-0123456789abcdefghij",
            "secrets.authApiKeys": "auth-key-1,auth-key-2",
            "secrets.publisherApiKeys": "publisher-key-1",
        }
    )
    return render(values=values), ports


def point_at_test_infra(pod: PodPlan, infra: Infra, topic: str) -> dict[str, str]:
    env = dict(pod.env)
    assert env["ROOMCAST_REDIS__URL"] == CLUSTER_REDIS
    assert env["ROOMCAST_KAFKA__BOOTSTRAP_SERVERS"] == CLUSTER_KAFKA
    env["ROOMCAST_REDIS__URL"] = infra.redis_url
    env["ROOMCAST_KAFKA__BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap
    env["ROOMCAST_KAFKA__TOPIC"] = topic
    # The chart creates topics with 3 replicas; the test Kafka is a single broker.
    assert env["ROOMCAST_KAFKA__REPLICATION_FACTOR"] == "3"
    env["ROOMCAST_KAFKA__REPLICATION_FACTOR"] = "1"
    return env


class Pod:
    """One container's process, started from its rendered spec."""

    def __init__(self, spec: PodPlan, env: dict[str, str], workdir: Path) -> None:
        self.spec = spec
        self.log = workdir / f"{spec.component}.log"
        # Only what the image and the pod spec define: nothing leaks from this shell.
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            **IMAGE_ENV,
            **env,
        }
        self.proc = spawn(spec.command, self.log, env=self.env, cwd=workdir)

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def logs(self) -> str:
        return tail(self.log, 40)


@pytest.fixture
def pods(infra: Infra, topic: str, tmp_path: Path) -> Iterator[dict[str, Pod]]:
    rendered, ports = render_with_free_ports()
    started: dict[str, Pod] = {}
    for key in COMPONENTS:
        spec = plan(rendered, key)
        assert spec.port == ports[key]
        started[spec.component] = Pod(spec, point_at_test_infra(spec, infra, topic), tmp_path)
    yield started
    for pod in started.values():
        stop(pod.proc, timeout=20)


def test_rendered_containers_become_ready_and_stop_within_grace(pods: dict[str, Pod]) -> None:
    reports = run_probes(
        [pod.spec for pod in pods.values()],
        exited=lambda component: pods[component].exited(),
        deadline_seconds=120,
    )
    for component, report in reports.items():
        logs = pods[component].logs()
        assert not report.exited, f"{component} exited at start:\n{logs}"
        assert not report.restarted, f"{component} failed its liveness probe:\n{logs}"
        assert report.ready, f"{component} never turned ready ({report.notes}):\n{logs}"
        assert report.liveness_passes >= 1

    # `helm test`: the hook's own script, the Service names resolved to these processes.
    helm_test = run_hook([f"http://127.0.0.1:{p.spec.port}/readyz" for p in pods.values()], 30)
    assert helm_test.returncode == 0, helm_test.stdout + helm_test.stderr
    assert helm_test.stdout.count("ready:") == 3

    # The kubelet runs preStop first; the pod keeps serving while endpoints update.
    started = time.monotonic()
    pre_stops = {c: subprocess.Popen(pod.spec.pre_stop) for c, pod in pods.items()}
    for component, pod in pods.items():
        assert http_probe(pod.spec.readiness), f"{component} stopped serving before SIGTERM"
    for component, hook in pre_stops.items():
        assert hook.wait(timeout=pods[component].spec.grace_seconds) == 0

    # Then SIGTERM to the container's main process; the grace period counts from preStop.
    for pod in pods.values():
        os.kill(pod.proc.pid, signal.SIGTERM)
    for component, pod in pods.items():
        left = pod.spec.grace_seconds - (time.monotonic() - started)
        try:
            code = pod.proc.wait(timeout=max(left, 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"{component} still running at the end of terminationGracePeriodSeconds "
                f"({pod.spec.grace_seconds}s): the kubelet would SIGKILL it\n{pod.logs()}"
            )
        assert code == 0, f"{component} exited with {code} on SIGTERM:\n{pod.logs()}"


def test_rendered_env_carries_no_service_links_and_the_right_port(pods: dict[str, Pod]) -> None:
    for component, pod in pods.items():
        key = next(k for k, (c, _, _) in COMPONENTS.items() if c == component)
        port_setting = COMPONENTS[key][2]
        assert pod.env[port_setting] == str(pod.spec.port)
        assert not any(name.endswith("_SERVICE_HOST") for name in pod.env)
        assert pod.env["ROOMCAST_MODE"] == "production"
        assert pod.env["OTEL_SERVICE_NAME"] == f"roomcast-{component}"
        assert "k8s.pod.name=rc-roomcast-" in pod.env["OTEL_RESOURCE_ATTRIBUTES"]
        assert "$(" not in pod.env["OTEL_RESOURCE_ATTRIBUTES"]
    assert pods["auth"].env["ROOMCAST_AUTH__API_KEYS"] == "auth-key-1,auth-key-2"
    assert pods["publisher"].env["ROOMCAST_PUBLISHER__API_KEYS"] == "publisher-key-1"
    assert pods["ws-edge"].env["ROOMCAST_JWT__SECRET"] == pods["auth"].env["ROOMCAST_JWT__SECRET"]
    assert "ROOMCAST_JWT__SECRET" not in pods["publisher"].env


def _hook_command() -> tuple[list[str], dict[str, str]]:
    """The `helm test` pod's command and env; `python` is this interpreter."""
    rendered, _ = render_with_free_ports()
    (hook,) = rendered.of_kind("Pod")
    ctr = hook["spec"]["containers"][0]
    assert ctr["command"][0] == "python"
    env = {e["name"]: str(e["value"]) for e in ctr["env"]}
    return [sys.executable, *ctr["command"][1:]], env


def run_hook(urls: list[str], timeout_seconds: int) -> subprocess.CompletedProcess[str]:
    command, env = _hook_command()
    assert len(env["READY_URLS"].split()) == 3
    return subprocess.run(
        command,
        env={**env, "READY_URLS": " ".join(urls), "TIMEOUT_SECONDS": str(timeout_seconds)},
        capture_output=True,
        text=True,
        timeout=timeout_seconds + 60,
        check=False,
    )


def test_helm_test_hook_fails_when_a_service_is_not_there() -> None:
    failed = run_hook([f"http://127.0.0.1:{free_port()}/readyz"], timeout_seconds=3)
    assert failed.returncode == 1
    assert "NOT READY" in failed.stdout
