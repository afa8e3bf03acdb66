"""The rules a cluster operator relies on, checked on what the chart renders."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    COMPONENTS,
    REPO,
    Rendered,
    container,
    container_port,
    helm,
    render,
    template_args,
)

KEYS = list(COMPONENTS)
SPEC_PORTS = {"auth": 8080, "wsEdge": 8081, "publisher": 8082}
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


# Every secret given as a value: the chart makes its Secret without asking a cluster.
GIVEN_SECRETS = {
    "secrets.existingSecret": "",
    "secrets.jwtSecret": "given-jwt-secret-0123456789abcdefghijkl",
    "secrets.authApiKeys": "auth-key-1",
    "secrets.publisherApiKeys": "pub-key-1",
}


def _config(rendered: Rendered) -> dict[str, str]:
    return {k: str(v) for k, v in rendered.one("ConfigMap")["data"].items()}


def _pod_spec(rendered: Rendered, key: str) -> dict[str, object]:
    return dict(rendered.deployment(key)["spec"]["template"]["spec"])


@pytest.mark.parametrize("key", KEYS)
def test_probes_point_at_the_real_paths_and_port(default_render: Rendered, key: str) -> None:
    ctr = container(default_render.deployment(key))
    _, module, port_setting = COMPONENTS[key]
    assert ctr["command"] == ["python", "-m", module]
    (declared,) = ctr["ports"]
    assert declared["containerPort"] == SPEC_PORTS[key]
    # The port the service listens on (its setting) is the port the probes and Service use.
    assert _config(default_render)[port_setting] == str(SPEC_PORTS[key])
    readiness, liveness = ctr["readinessProbe"], ctr["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz"
    assert liveness["httpGet"]["path"] == "/livez"
    for probe in (readiness, liveness):
        assert container_port(ctr, probe["httpGet"]["port"]) == SPEC_PORTS[key]
        assert probe["timeoutSeconds"] < probe["periodSeconds"]
    # A pod leaves its Service quickly when not ready, but is restarted only after a
    # longer liveness failure: a Redis outage must not restart every pod.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < (
        liveness["periodSeconds"] * liveness["failureThreshold"]
    )
    assert liveness["initialDelaySeconds"] >= readiness["initialDelaySeconds"]


@pytest.mark.parametrize("key", KEYS)
def test_grace_period_covers_prestop_sleep_and_drain(default_render: Rendered, key: str) -> None:
    spec = _pod_spec(default_render, key)
    ctr = container(default_render.deployment(key))
    command = ctr["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop > 0
    drain = int(_config(default_render)["ROOMCAST_EDGE__DRAIN_SECONDS"]) if key == "wsEdge" else 0
    assert isinstance(spec["terminationGracePeriodSeconds"], int)
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain + 5


def test_edge_drain_default_matches_the_service_default(default_render: Rendered) -> None:
    assert _config(default_render)["ROOMCAST_EDGE__DRAIN_SECONDS"] == "10"


@pytest.mark.parametrize("key", KEYS)
def test_pods_are_hardened(default_render: Rendered, key: str) -> None:
    spec = _pod_spec(default_render, key)
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False
    pod_security = spec["securityContext"]
    assert isinstance(pod_security, dict)
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(default_render.deployment(key))["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("key", KEYS)
def test_resources_and_pinned_image(default_render: Rendered, key: str) -> None:
    ctr = container(default_render.deployment(key))
    assert ctr["resources"]["requests"]["cpu"]
    assert ctr["resources"]["requests"]["memory"]
    assert ctr["resources"]["limits"]["memory"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    repository, tag = ctr["image"].rsplit(":", 1)
    assert tag == chart["appVersion"]
    assert tag != "latest"
    # One name per service: the image is named like the deployment (roomcast-ws-edge).
    assert repository == f"registry.example.com/roomcast/roomcast-{COMPONENTS[key][0]}"
    assert default_render.deployment(key)["metadata"]["name"] == f"rc-roomcast-{COMPONENTS[key][0]}"


@pytest.mark.parametrize("key", KEYS)
def test_labels_selectors_and_service_agree(default_render: Rendered, key: str) -> None:
    component = COMPONENTS[key][0]
    deployment = default_render.deployment(key)
    service = default_render.one("Service", component)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for resource_labels in (
        deployment["metadata"]["labels"],
        pod_labels,
        service["metadata"]["labels"],
    ):
        for label in RECOMMENDED_LABELS:
            assert resource_labels.get(label), label
        assert resource_labels["app.kubernetes.io/component"] == component
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Selectors are immutable: they must not carry the version or chart labels.
    assert "app.kubernetes.io/version" not in selector
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    assert port["port"] == SPEC_PORTS[key]


def test_secrets_reach_the_services_that_need_them() -> None:
    rendered = render(values=GIVEN_SECRETS)
    secret = rendered.one("Secret")
    assert set(secret["data"]) == {
        "jwt-secret",
        "auth-api-keys",
        "publisher-api-keys",
        "webhook-secret",
        "publisher-admin-keys",
    }
    assert _config(rendered)["ROOMCAST_MODE"] == "production"

    def secret_env(key: str) -> dict[str, str]:
        env = container(rendered.deployment(key))["env"]
        return {
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in env
            if "secretKeyRef" in e.get("valueFrom", {})
        }

    assert secret_env("auth") == {
        "ROOMCAST_JWT__SECRET": "jwt-secret",
        "ROOMCAST_AUTH__API_KEYS": "auth-api-keys",
    }
    assert secret_env("wsEdge") == {
        "ROOMCAST_JWT__SECRET": "jwt-secret",
        "ROOMCAST_WEBHOOKS__SECRET": "webhook-secret",
    }
    assert secret_env("publisher") == {
        "ROOMCAST_PUBLISHER__API_KEYS": "publisher-api-keys",
        "ROOMCAST_PUBLISHER__ADMIN_KEYS": "publisher-admin-keys",
    }


def test_existing_secret_replaces_the_chart_secret() -> None:
    rendered = render(values={"secrets.existingSecret": "my-secrets"})
    assert rendered.of_kind("Secret") == []
    for key in KEYS:
        for item in container(rendered.deployment(key))["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "my-secrets"


def test_a_given_jwt_secret_is_used_as_is() -> None:
    import base64

    rendered = render(
        values={**GIVEN_SECRETS, "secrets.jwtSecret": "s3cr3t-value-for-the-test-0123456789"}
    )
    data = rendered.one("Secret")["data"]
    assert base64.b64decode(data["jwt-secret"]).decode() == "s3cr3t-value-for-the-test-0123456789"


def test_external_addresses_and_otlp_endpoint_are_values() -> None:
    rendered = render(
        values={
            "redis.url": "redis://redis-master.data:6379/2",
            "kafka.bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
            "kafka.topic": "pushes",
            "otel.endpoint": "http://collector.observability:4318",
        }
    )
    config = _config(rendered)
    assert config["ROOMCAST_REDIS__URL"] == "redis://redis-master.data:6379/2"
    assert config["ROOMCAST_KAFKA__BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    assert config["ROOMCAST_KAFKA__TOPIC"] == "pushes"
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4318"


def test_no_otlp_endpoint_by_default(default_render: Rendered) -> None:
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in _config(default_render)
    for key in KEYS:
        env = {e["name"]: e.get("value") for e in container(default_render.deployment(key))["env"]}
        assert env["OTEL_SERVICE_NAME"] == f"roomcast-{COMPONENTS[key][0]}"


def test_services_map_sets_one_service_replicas() -> None:
    rendered = render(values={"services.wsEdge.replicas": 3})
    assert rendered.deployment("wsEdge")["spec"]["replicas"] == 3
    assert rendered.deployment("auth")["spec"]["replicas"] == 2
    assert rendered.deployment("publisher")["spec"]["replicas"] == 2


def test_config_checksum_rolls_pods_only_when_config_changes(default_render: Rendered) -> None:
    def checksums(rendered: Rendered) -> set[str]:
        return {
            rendered.deployment(key)["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for key in KEYS
        }

    before = checksums(default_render)
    assert len(before) == 1
    (value,) = before
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert checksums(render()) == before
    assert checksums(render(values={"services.wsEdge.maxRooms": 5})) != before
    assert checksums(render(values={"services.auth.replicas": 4})) == before


def test_network_policy_exposes_edge_and_auth_and_limits_publisher(
    default_render: Rendered,
) -> None:
    policies = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p
        for p in default_render.of_kind("NetworkPolicy")
    }
    assert set(policies) == {"auth", "ws-edge", "publisher"}
    for component, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert (
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        )
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert "from" not in policies["ws-edge"]["spec"]["ingress"][0]
    assert "from" not in policies["auth"]["spec"]["ingress"][0]
    peers = policies["publisher"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in peers
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "test"
        for p in peers
    )


def test_ingress_keeps_websockets_open_and_routes_paths(all_on_render: Rendered) -> None:
    (ingress,) = all_on_render.of_kind("Ingress")
    annotations = ingress["metadata"]["annotations"]
    timeout = int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert timeout > 30  # beyond heartbeatTimeout
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == str(timeout)
    routes = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert routes["/ws"] == "rc-roomcast-ws-edge"
    assert routes["/sse"] == "rc-roomcast-ws-edge"
    assert routes["/v1/connections"] == "rc-roomcast-ws-edge"
    assert routes["/v1/tokens"] == "rc-roomcast-auth"
    assert routes["/get/token"] == "rc-roomcast-auth"
    assert routes["/v1/messages"] == "rc-roomcast-publisher"


def test_hpa_and_pdb_target_their_deployment(all_on_render: Rendered) -> None:
    for key in KEYS:
        component = COMPONENTS[key][0]
        deployment = all_on_render.deployment(key)
        hpa = all_on_render.one("HorizontalPodAutoscaler", component)
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = all_on_render.one("PodDisruptionBudget", component)
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )


def test_helm_test_hook_checks_every_service_readiness(default_render: Rendered) -> None:
    (pod,) = default_render.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["READY_URLS"].split() == [
        "http://rc-roomcast-auth:8080/readyz",
        "http://rc-roomcast-ws-edge:8081/readyz",
        "http://rc-roomcast-publisher:8082/readyz",
    ]


def test_every_value_is_camel_case_and_documented_by_name() -> None:
    """Helm's best practice: camelCase names, each with a comment starting with its name."""
    free_form = {"podSecurityContext", "securityContext", "resources"}
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []
    checked = 0
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2)
        parents = [(i, n) for i, n in parents if i < indent]
        inside_free_form = any(n in free_form for _, n in parents)
        parents.append((indent, name))
        if inside_free_form:
            continue
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", name), (
            f"line {number + 1}: {name} is not camelCase"
        )
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            above -= 1
        comment = lines[above + 1].strip() if above + 1 < number else ""
        assert re.match(rf"# (\w+\.)?{name}\b", comment), (
            f"line {number + 1}: {name} lacks '# {name} ...'"
        )
        checked += 1
    assert checked > 60


def test_grafana_dashboard_is_optional_and_uses_real_metrics(
    default_render: Rendered, all_on_render: Rendered
) -> None:
    assert not [
        d for d in default_render.of_kind("ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    dashboard = all_on_render.named("ConfigMap", "rc-roomcast-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["roomcast.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for wanted in (
        "connections",
        "deliveries",
        "dropped",
        "latency",
        "presence",
        "webhook",
        "backlog",
        "history",
    ):
        assert wanted in titles
    # What the services define: Counter("roomcast_...", ...) and the like, wherever it is.
    exported: dict[str, str] = {}
    for path in (REPO / "services").glob("*/src/**/*.py"):
        for kind, name in re.findall(
            r"\b(Counter|Gauge|Histogram)\(\s*\"(roomcast_[a-z_]+)\"", path.read_text()
        ):
            exported[name] = kind
    # The series each kind shows Prometheus: counters only as _total, histograms as
    # _bucket/_count/_sum, gauges as they are.
    series = {"Counter": ("_total",), "Histogram": ("_bucket", "_count", "_sum"), "Gauge": ("",)}
    used = {m for e in exprs for m in re.findall(r"roomcast_[a-z_]+", e)}
    assert used
    for metric in used:
        found = [
            name
            for name, kind in exported.items()
            for suffix in series[kind]
            if metric == name + suffix
        ]
        assert found, f"dashboard uses {metric}, which no service exports"


def test_asymmetric_keys_mint_only_in_auth_and_edges_read_its_jwks() -> None:
    rendered = render(values={"jwt.algorithm": "EdDSA", "jwt.privateKeySecret": "rc-jwt-key"})
    env = {key: {e["name"]: e for e in container(rendered.deployment(key))["env"]} for key in KEYS}
    for key in KEYS:
        assert "ROOMCAST_JWT__SECRET" not in env[key], key
    auth_file = env["auth"]["ROOMCAST_JWT__PRIVATE_KEY_FILE"]["value"]
    auth = rendered.deployment("auth")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(rendered.deployment("auth"))["volumeMounts"]}
    assert auth_file.startswith(mounts["jwt-key"]["mountPath"] + "/")
    assert mounts["jwt-key"]["readOnly"] is True
    volume = next(v for v in auth["volumes"] if v["name"] == "jwt-key")
    assert volume["secret"]["secretName"] == "rc-jwt-key"
    assert env["auth"]["ROOMCAST_JWT__KID"]["value"] == "k1"
    auth_port = container_port(container(rendered.deployment("auth")), "http")
    assert (
        env["wsEdge"]["ROOMCAST_JWT__JWKS_URL"]["value"]
        == f"http://rc-roomcast-auth:{auth_port}/.well-known/jwks.json"
    )
    for key in ("wsEdge", "publisher"):
        spec = rendered.deployment(key)["spec"]["template"]["spec"]
        assert "jwt-key" not in {v["name"] for v in spec["volumes"]}, key
        assert "ROOMCAST_JWT__PRIVATE_KEY_FILE" not in env[key], key


def test_asymmetric_keys_need_a_key_secret_and_a_known_algorithm() -> None:
    missing = helm(*template_args((), {"jwt.algorithm": "ES256"}), check=False)
    assert missing.returncode != 0
    assert "jwt.privateKeySecret" in missing.stderr
    unknown = helm(*template_args((), {"jwt.algorithm": "none"}), check=False)
    assert unknown.returncode != 0
    assert "algorithm" in unknown.stderr


_QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _bytes(quantity: str | int) -> int:
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", str(quantity))
    assert match, quantity
    return int(match.group(1)) * _QUANTITY[match.group(2)]


def _edge_budget(config: dict[str, str]) -> int:
    """What the edge may hold: the process, its history, every connection it accepts."""
    budget = yaml.safe_load((CHART / "values.yaml").read_text())["services"]["wsEdge"][
        "memoryBudget"
    ]
    return int(
        budget["baseBytes"]
        + int(config["ROOMCAST_EDGE__HISTORY_BYTES"])
        + budget["perConnectionBytes"] * int(config["ROOMCAST_EDGE__MAX_CONNECTIONS"])
    )


def test_edge_memory_limit_holds_history_and_connections(default_render: Rendered) -> None:
    import tomllib

    config = _config(default_render)
    defaults = tomllib.loads(
        (REPO / "libs/core/src/roomcast_core/defaults.toml").read_text(encoding="utf-8")
    )
    assert int(config["ROOMCAST_EDGE__HISTORY_BYTES"]) == defaults["edge"]["history_bytes"]
    limit = container(default_render.deployment("wsEdge"))["resources"]["limits"]["memory"]
    assert _edge_budget(config) <= _bytes(limit)


def test_edge_memory_limit_below_its_budget_is_refused(default_render: Rendered) -> None:
    needed = _edge_budget(_config(default_render))
    exact = render(values={"services.wsEdge.resources.limits.memory": str(needed)})
    assert container(exact.deployment("wsEdge"))["resources"]["limits"]["memory"] == str(needed)
    short = helm(
        *template_args((), {"services.wsEdge.resources.limits.memory": str(needed - 1)}),
        check=False,
    )
    assert short.returncode != 0
    assert "services.wsEdge.resources.limits.memory" in short.stderr
    assert str(needed) in short.stderr


@pytest.mark.parametrize(
    ("values", "fits"),
    [
        ({"services.wsEdge.maxConnections": 100_000}, False),
        (
            {
                "services.wsEdge.maxConnections": 100_000,
                "services.wsEdge.resources.limits.memory": "2Gi",
            },
            True,
        ),
        ({"services.wsEdge.historyBytes": 2**30}, False),
        (
            {
                "services.wsEdge.historyBytes": 2**30,
                "services.wsEdge.resources.limits.memory": "1.75Gi",
            },
            True,
        ),
        ({"services.wsEdge.extraEnv.ROOMCAST_EDGE__HISTORY_BYTES": str(2**30)}, False),
        ({"services.wsEdge.memoryBudget.perConnectionBytes": 65536}, False),
        ({"services.wsEdge.resources.limits.memory": "1G"}, True),
        ({"services.wsEdge.resources.limits.memory": "700Mi"}, False),
    ],
)
def test_edge_memory_budget_follows_every_term(values: dict[str, object], fits: bool) -> None:
    result = helm(*template_args((), values), check=False)
    assert (result.returncode == 0) is fits, result.stderr
    if not fits:
        assert "memory budget" in result.stderr


@pytest.mark.parametrize("limit", ["lots", "1Gb", ""])
def test_edge_memory_limit_must_be_a_quantity(limit: str) -> None:
    result = helm(
        *template_args((), {"services.wsEdge.resources.limits.memory": limit}), check=False
    )
    assert result.returncode != 0
    assert "limits.memory" in result.stderr or "memory quantity" in result.stderr
