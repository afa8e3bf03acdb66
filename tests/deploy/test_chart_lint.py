"""helm lint --strict and Kubernetes JSON-schema validation of what the chart renders."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.chart import CHART, MINIMAL, VALUES_DIR, Doc, Rendered, helm, template_args

# The chart's kubeVersion floor and the newest Kubernetes the validator knows.
KUBERNETES_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
# Custom resources have no schema in kubernetes-validate; they are checked below instead.
CUSTOM_KINDS = {"ServiceMonitor"}


@pytest.mark.parametrize("values", [["-f", str(MINIMAL)], ["-f", str(VALUES_DIR / "all-on.yaml")]])
def test_helm_lint_strict_passes(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def _validate(docs: list[Doc], version: str) -> list[str]:
    checked = []
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return checked


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_default_render_is_valid_kubernetes(default_render: Rendered, version: str) -> None:
    checked = _validate(default_render.docs, version)
    kinds = {name.split("/")[0] for name in checked}
    # No Secret: the minimal values name one the operator manages.
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "NetworkPolicy"} <= kinds
    assert "Pod" in kinds  # the helm test hook
    assert len(default_render.of_kind("Deployment")) == 3
    # Off by default: one switch each.
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "ServiceMonitor"):
        assert default_render.of_kind(kind) == [], kind


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_switch_on_render_is_valid_kubernetes(all_on_render: Rendered, version: str) -> None:
    checked = _validate(all_on_render.docs, version)
    kinds = [name.split("/")[0] for name in checked]
    assert kinds.count("HorizontalPodAutoscaler") == 3
    assert kinds.count("PodDisruptionBudget") == 3
    assert kinds.count("Ingress") == 1
    for deployment in all_on_render.of_kind("Deployment"):
        assert "replicas" not in deployment["spec"], "the HPA owns replicas when autoscaling"


def test_an_invalid_resource_is_caught_by_the_validator(default_render: Rendered) -> None:
    """The validation above can fail: a misspelt field in a Deployment is rejected."""
    broken = yaml.safe_load(yaml.safe_dump(default_render.deployment("auth")))
    broken["spec"]["template"]["spec"]["enableServiceLink"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_service_monitor_scrapes_every_service(all_on_render: Rendered) -> None:
    (monitor,) = all_on_render.of_kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = all_on_render.of_kind("Service")
    assert len(services) == 3
    for service in services:
        labels = service["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), service["metadata"]["name"]
        assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "30s"}


def test_bad_values_file_is_rejected_by_the_schema() -> None:
    result = helm(*template_args([VALUES_DIR / "bad-types.yaml"]), check=False)
    assert result.returncode != 0
    for where in (
        "/services/wsEdge/replicas",
        "/services/wsEdge/port",
        "/autoscaling/enabled",
        "/probes/readiness/periodSeconds",
    ):
        assert where in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("services.auth.replicas=two", "/services/auth/replicas"),
        ("podDisruptionBudget.enabled=maybe", "/podDisruptionBudget/enabled"),
        ("redis.url=localhost:6379", "/redis/url"),
        ("services.publisher.typo=1", "/services/publisher"),
        ("lifecycle.preStopSleepSeconds=-1", "/lifecycle/preStopSleepSeconds"),
    ],
)
def test_schema_rejects_wrong_values_on_the_command_line(setting: str, where: str) -> None:
    result = helm(*template_args(), "--set", setting, check=False)
    assert result.returncode != 0
    assert where in result.stderr, result.stderr


def test_grace_period_shorter_than_prestop_and_drain_fails_the_render(tmp_path: Path) -> None:
    values = tmp_path / "short-grace.yaml"
    values.write_text(
        "lifecycle: {preStopSleepSeconds: 10}\n"
        "services: {wsEdge: {drainSeconds: 20, terminationGracePeriodSeconds: 30}}\n"
    )
    result = helm(*template_args([values]), check=False)
    assert result.returncode != 0
    assert "services.wsEdge.terminationGracePeriodSeconds (30)" in result.stderr
    assert "= 35" in result.stderr
