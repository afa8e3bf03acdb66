"""What a kubelet does with a rendered Deployment, done on this machine.

From a container spec: the command, the environment (ConfigMap and Secret references
resolved, downward-API fields filled in, $(VAR) references expanded) and the probes.
The prober follows the declared path, port, timeout, period and thresholds.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.deploy.chart import COMPONENTS, Doc, Rendered, container, container_port

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int
    success_threshold: int

    @classmethod
    def from_spec(cls, spec: Doc, ctr: Doc) -> Probe:
        http_get = spec["httpGet"]
        # Kubernetes' defaults for fields a probe leaves out.
        return cls(
            path=http_get["path"],
            port=container_port(ctr, http_get["port"]),
            initial_delay=float(spec.get("initialDelaySeconds", 0)),
            period=float(spec.get("periodSeconds", 10)),
            timeout=float(spec.get("timeoutSeconds", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
            success_threshold=int(spec.get("successThreshold", 1)),
        )


@dataclass(frozen=True)
class PodPlan:
    """One service's container as the kubelet would start and stop it."""

    component: str
    command: list[str]
    env: dict[str, str]
    port: int
    readiness: Probe
    liveness: Probe
    pre_stop: list[str]
    grace_seconds: int
    run_as_user: int | None


def _decode_secret(secret: Doc) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def expand(value: str, env: Mapping[str, str]) -> str:
    """$(VAR) references to variables defined before; unknown ones stay as written."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def resolve_env(ctr: Doc, rendered: Rendered, pod_fields: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in ctr.get("envFrom", []):
        if "configMapRef" in source:
            config = rendered.named("ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in (config.get("data") or {}).items()})
        elif "secretRef" in source:
            env.update(_decode_secret(rendered.named("Secret", source["secretRef"]["name"])))
        else:
            raise AssertionError(f"unsupported envFrom source: {source}")
    for item in ctr.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            env[name] = pod_fields[ref["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            values = _decode_secret(rendered.named("Secret", key_ref["name"]))
            if key_ref["key"] in values:
                env[name] = values[key_ref["key"]]
            else:
                assert key_ref.get("optional"), f"{name}: Secret has no key {key_ref['key']}"
        elif "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[name] = str(rendered.named("ConfigMap", key_ref["name"])["data"][key_ref["key"]])
        else:
            raise AssertionError(f"unsupported valueFrom for {name}: {ref}")
    return env


def plan(rendered: Rendered, key: str, namespace: str = "default") -> PodPlan:
    deployment = rendered.deployment(key)
    pod_spec = deployment["spec"]["template"]["spec"]
    ctr = container(deployment)
    component = COMPONENTS[key][0]
    pod_fields = {
        "metadata.name": f"{deployment['metadata']['name']}-kubelet-test",
        "metadata.namespace": namespace,
    }
    security = {**pod_spec.get("securityContext", {}), **ctr.get("securityContext", {})}
    (port,) = [int(p["containerPort"]) for p in ctr["ports"]]
    return PodPlan(
        component=component,
        command=[*ctr.get("command", []), *ctr.get("args", [])],
        env=resolve_env(ctr, rendered, pod_fields),
        port=port,
        readiness=Probe.from_spec(ctr["readinessProbe"], ctr),
        liveness=Probe.from_spec(ctr["livenessProbe"], ctr),
        pre_stop=list(ctr["lifecycle"]["preStop"]["exec"]["command"]),
        grace_seconds=int(pod_spec["terminationGracePeriodSeconds"]),
        run_as_user=security.get("runAsUser"),
    )


def http_probe(probe: Probe, host: str = "127.0.0.1") -> bool:
    """The kubelet's HTTP probe: any status from 200 to 399 within the timeout succeeds."""
    url = f"http://{host}:{probe.port}{probe.path}"
    try:
        with urllib.request.urlopen(url, timeout=probe.timeout) as response:
            return 200 <= int(response.status) < 400
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400
    except (OSError, ValueError):
        return False


@dataclass
class _ProbeRun:
    probe: Probe
    next_at: float
    successes: int = 0
    failures: int = 0
    probes: int = 0

    def record(self, ok: bool) -> None:
        self.probes += 1
        self.successes = self.successes + 1 if ok else 0
        self.failures = 0 if ok else self.failures + 1
        self.next_at += self.probe.period


@dataclass
class ProbeReport:
    ready: bool = False
    restarted: bool = False
    exited: bool = False
    liveness_passes: int = 0
    readiness_probes: int = 0
    notes: list[str] = field(default_factory=list)


def run_probes(
    pods: Sequence[PodPlan],
    exited: Callable[[str], bool],
    deadline_seconds: float,
) -> dict[str, ProbeReport]:
    """Probe every pod as declared until each is ready and has passed a liveness probe.

    A pod whose liveness probe fails failureThreshold times in a row is one the kubelet
    would restart: that ends its probing with `restarted`. The deadline only bounds the
    test; the kubelet itself would keep probing.
    """
    start = time.monotonic()
    runs = {
        pod.component: (
            _ProbeRun(pod.readiness, start + pod.readiness.initial_delay),
            _ProbeRun(pod.liveness, start + pod.liveness.initial_delay),
        )
        for pod in pods
    }
    reports = {pod.component: ProbeReport() for pod in pods}

    def done(component: str) -> bool:
        report = reports[component]
        finished = report.ready and report.liveness_passes > 0
        return finished or report.restarted or report.exited

    while not all(done(pod.component) for pod in pods):
        now = time.monotonic()
        if now - start > deadline_seconds:
            for pod in pods:
                if not done(pod.component):
                    reports[pod.component].notes.append(
                        f"not ready after {deadline_seconds:.0f}s of probing"
                    )
            break
        for pod in pods:
            report = reports[pod.component]
            if done(pod.component):
                continue
            if exited(pod.component):
                report.exited = True
                continue
            readiness, liveness = runs[pod.component]
            if now >= readiness.next_at and not report.ready:
                readiness.record(http_probe(readiness.probe))
                report.readiness_probes = readiness.probes
                report.ready = readiness.successes >= readiness.probe.success_threshold
            if now >= liveness.next_at:
                ok = http_probe(liveness.probe)
                liveness.record(ok)
                if ok:
                    report.liveness_passes += 1
                report.restarted = liveness.failures >= liveness.probe.failure_threshold
        time.sleep(0.05)
    return reports
