"""An operator's install, checked on the render: images from a named registry, every
secret from a Secret (or given, never invented by `helm template`), Kafka SASL/TLS and
Redis password/TLS reaching the pods that use them, and the refusals that say how."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from roomcast_core.settings import load_settings
from tests.deploy.chart import (
    CHART,
    COMPONENTS,
    REPO,
    Doc,
    Rendered,
    container,
    helm,
    parse,
    render,
    template_args,
)
from tests.deploy.stub_cluster import NAMESPACE, stub_cluster

KEYS = list(COMPONENTS)
EXAMPLE = CHART / "examples" / "managed-kafka-redis.yaml"
GIVEN_SECRETS: dict[str, object] = {
    "secrets.existingSecret": "",
    "secrets.jwtSecret": "given-jwt-secret-0123456789abcdefghijkl",
    "secrets.authApiKeys": "auth-key-1,auth-key-2",
    "secrets.publisherApiKeys": "pub-key-1",
}
SASL_SSL: dict[str, object] = {
    "kafka.securityProtocol": "SASL_SSL",
    "kafka.sasl.mechanism": "SCRAM-SHA-256",
    "kafka.sasl.existingSecret": "kafka-user",
    "kafka.tls.caSecret": "kafka-ca",
    "kafka.tls.clientSecret": "kafka-client",
}


def _env(rendered: Rendered, key: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(rendered.deployment(key))["env"]}


def _secret_ref(entry: dict[str, Any]) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def _refused(values: dict[str, object], *, minimal: bool = True) -> str:
    result = helm(*template_args((), values, minimal=minimal), check=False)
    assert result.returncode != 0, "the render should have been refused"
    return result.stderr


def _pod_env(rendered: Rendered, key: str, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """What the pod's process sees, with each Secret key resolved from `secrets`."""
    ctr = container(rendered.deployment(key))
    (config,) = rendered.of_kind("ConfigMap")
    env = {k: str(v) for k, v in config["data"].items()}
    for entry in ctr["env"]:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = secrets[_secret_ref(entry)]
    return {k: v for k, v in env.items() if k.startswith("ROOMCAST_")}


def test_the_render_is_the_same_twice() -> None:
    """What GitOps tools do: `helm template` on every sync must not rotate anything."""
    for values in ({}, GIVEN_SECRETS, SASL_SSL):
        first = helm(*template_args((), values)).stdout
        assert helm(*template_args((), values)).stdout == first, values


def test_without_a_registry_the_render_refuses_and_says_how() -> None:
    message = _refused({"secrets.existingSecret": "s"}, minimal=False)
    assert "image.registry" in message
    assert "make images REGISTRY=" in message
    assert "image.local=true" in message
    local = render(values={"secrets.existingSecret": "s", "image.local": True}, minimal=False)
    images = {container(local.deployment(key))["image"] for key in KEYS}
    assert images == {"roomcast-auth:0.1.0", "roomcast-ws-edge:0.1.0", "roomcast-publisher:0.1.0"}


def test_a_registry_prefixes_every_image() -> None:
    rendered = render(values={"image.registry": "ghcr.io/acme/roomcast/"})
    for key in KEYS:
        image = container(rendered.deployment(key))["image"]
        assert image == f"ghcr.io/acme/roomcast/roomcast-{COMPONENTS[key][0]}:0.1.0"
    (test_pod,) = rendered.of_kind("Pod")
    assert test_pod["spec"]["containers"][0]["image"].startswith("ghcr.io/acme/roomcast/")


def test_helm_template_never_invents_a_secret() -> None:
    message = _refused({"image.registry": "r.example.com"}, minimal=False)
    for value in ("secrets.jwtSecret", "secrets.authApiKeys", "secrets.publisherApiKeys"):
        assert value in message
    assert "secrets.existingSecret" in message
    assert "secrets.webhookSecret" not in message  # no webhooks, no webhook secret needed
    webhooks = _refused({**GIVEN_SECRETS, "webhooks.urls": "https://hooks.example.com/a"})
    assert "secrets.webhookSecret" in webhooks
    assert "secrets.jwtSecret" not in webhooks
    # Keys that are not required are not asked for; the JWT key still is.
    optional = _refused(
        {
            "secrets.existingSecret": "",
            "services.auth.requireApiKeys": False,
            "services.publisher.requireApiKeys": False,
        }
    )
    assert "secrets.jwtSecret" in optional
    assert "secrets.authApiKeys" not in optional
    assert "secrets.publisherApiKeys" not in optional


def test_given_secrets_are_kept_as_given() -> None:
    rendered = render(
        values={
            **GIVEN_SECRETS,
            "webhooks.urls": "https://h.example.com/x",
            "secrets.webhookSecret": "hook-secret",
        }
    )
    data = {k: base64.b64decode(v).decode() for k, v in rendered.one("Secret")["data"].items()}
    assert data == {
        "jwt-secret": "given-jwt-secret-0123456789abcdefghijkl",
        "auth-api-keys": "auth-key-1,auth-key-2",
        "publisher-api-keys": "pub-key-1",
        "webhook-secret": "hook-secret",
        "publisher-admin-keys": "",
    }
    for version in ("1.25.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(rendered.one("Secret"), version, strict=True)


def test_every_secret_comes_from_the_existing_secret() -> None:
    rendered = render(
        values={"secrets.existingSecret": "ops-managed", "webhooks.urls": "https://h.example.com/x"}
    )
    assert rendered.of_kind("Secret") == []
    refs = {
        key: {
            name: _secret_ref(e)
            for name, e in _env(rendered, key).items()
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        for key in KEYS
    }
    assert refs["auth"] == {
        "ROOMCAST_JWT__SECRET": ("ops-managed", "jwt-secret"),
        "ROOMCAST_AUTH__API_KEYS": ("ops-managed", "auth-api-keys"),
    }
    assert refs["wsEdge"] == {
        "ROOMCAST_JWT__SECRET": ("ops-managed", "jwt-secret"),
        "ROOMCAST_WEBHOOKS__SECRET": ("ops-managed", "webhook-secret"),
    }
    assert refs["publisher"] == {
        "ROOMCAST_PUBLISHER__API_KEYS": ("ops-managed", "publisher-api-keys"),
        "ROOMCAST_PUBLISHER__ADMIN_KEYS": ("ops-managed", "publisher-admin-keys"),
    }
    # Nothing secret sits in the ConfigMap.
    (config,) = rendered.of_kind("ConfigMap")
    assert not [k for k in config["data"] if "SECRET" in k or "API_KEYS" in k or "PASSWORD" in k]


def test_api_keys_are_required_unless_turned_off(default_render: Rendered) -> None:
    """A Secret without the keys must stop the pod, not silently open token issuing."""
    for key, section in (("auth", "AUTH"), ("publisher", "PUBLISHER")):
        ref = _env(default_render, key)[f"ROOMCAST_{section}__API_KEYS"]["valueFrom"]
        assert ref["secretKeyRef"].get("optional", False) is False, key
    relaxed = render(values={"services.auth.requireApiKeys": False})
    ref = _env(relaxed, "auth")["ROOMCAST_AUTH__API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True
    publisher = _env(relaxed, "publisher")["ROOMCAST_PUBLISHER__API_KEYS"]["valueFrom"]
    assert publisher["secretKeyRef"].get("optional", False) is False


def test_kafka_sasl_and_tls_reach_the_edge_and_the_publisher_only() -> None:
    rendered = render(values=SASL_SSL)
    for key in ("wsEdge", "publisher"):
        env = _env(rendered, key)
        assert env["ROOMCAST_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["ROOMCAST_KAFKA__SASL_MECHANISM"]["value"] == "SCRAM-SHA-256"
        assert _secret_ref(env["ROOMCAST_KAFKA__SASL_USERNAME"]) == ("kafka-user", "username")
        assert _secret_ref(env["ROOMCAST_KAFKA__SASL_PASSWORD"]) == ("kafka-user", "password")
        spec = rendered.deployment(key)["spec"]["template"]["spec"]
        volumes = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert volumes == {"kafka-ca": "kafka-ca", "kafka-client": "kafka-client"}
        mounts = {
            m["name"]: m["mountPath"] for m in container(rendered.deployment(key))["volumeMounts"]
        }
        assert env["ROOMCAST_KAFKA__SSL_CA_FILE"]["value"] == mounts["kafka-ca"] + "/ca.crt"
        assert env["ROOMCAST_KAFKA__SSL_CERT_FILE"]["value"] == mounts["kafka-client"] + "/tls.crt"
        assert env["ROOMCAST_KAFKA__SSL_KEY_FILE"]["value"] == mounts["kafka-client"] + "/tls.key"
    # A Strimzi KafkaUser's Secret holds only the password: the name can be a value.
    named = _env(render(values={**SASL_SSL, "kafka.sasl.username": "app-user"}), "wsEdge")
    assert named["ROOMCAST_KAFKA__SASL_USERNAME"]["value"] == "app-user"
    assert _secret_ref(named["ROOMCAST_KAFKA__SASL_PASSWORD"]) == ("kafka-user", "password")
    # auth never talks to Kafka: it gets neither the credentials nor the certificates.
    assert not [name for name in _env(rendered, "auth") if name.startswith("ROOMCAST_KAFKA__")]
    (config,) = rendered.of_kind("ConfigMap")
    assert not [
        k for k in config["data"] if k.startswith(("ROOMCAST_KAFKA__SASL", "ROOMCAST_KAFKA__SSL"))
    ]


def test_the_rendered_kafka_env_is_what_the_services_read() -> None:
    rendered = render(values={**SASL_SSL, "kafka.tls.caSecret": "", "kafka.tls.clientSecret": ""})
    secrets = {
        ("kafka-user", "username"): "roomcast",
        ("kafka-user", "password"): "@not-a-directive 1234",
        ("roomcast-secrets", "jwt-secret"): "j" * 40,
        ("roomcast-secrets", "publisher-api-keys"): "k",
        ("roomcast-secrets", "webhook-secret"): "",
        ("roomcast-secrets", "publisher-admin-keys"): "",
    }
    for key in ("wsEdge", "publisher"):
        kafka = load_settings(_pod_env(rendered, key, secrets)).kafka
        assert kafka.security_protocol == "SASL_SSL"
        assert kafka.sasl_mechanism == "SCRAM-SHA-256"
        assert (kafka.sasl_username, kafka.sasl_password) == ("roomcast", "@not-a-directive 1234")
        assert kafka.replication_factor == 3


def test_redis_password_comes_from_a_secret_and_never_sits_in_the_config_map() -> None:
    rendered = render(
        values={
            "redis.url": "rediss://redis.data:6380/0",
            "redis.existingSecret": "redis-auth",
            "redis.tls.caSecret": "redis-ca",
            "redis.username": "roomcast",
        }
    )
    config = rendered.one("ConfigMap")["data"]
    assert config["ROOMCAST_REDIS__URL"] == "rediss://redis.data:6380/0"
    assert config["ROOMCAST_REDIS__USERNAME"] == "roomcast"
    for key in KEYS:  # every service uses Redis
        env = _env(rendered, key)
        assert _secret_ref(env["ROOMCAST_REDIS__PASSWORD"]) == ("redis-auth", "redis-password")
        assert env["ROOMCAST_REDIS__CA_FILE"]["value"] == "/var/run/roomcast/redis-ca/ca.crt"
        mounts = {m["name"]: m for m in container(rendered.deployment(key))["volumeMounts"]}
        assert mounts["redis-ca"]["mountPath"] == "/var/run/roomcast/redis-ca"
        assert mounts["redis-ca"]["readOnly"] is True
    whole = render(
        values={
            "redis.existingSecret": "redis-auth",
            "redis.urlKey": "url",
            "redis.passwordKey": "",
        }
    )
    assert "ROOMCAST_REDIS__URL" not in whole.one("ConfigMap")["data"]
    for key in KEYS:
        env = _env(whole, key)
        assert _secret_ref(env["ROOMCAST_REDIS__URL"]) == ("redis-auth", "url")
        assert "ROOMCAST_REDIS__PASSWORD" not in env


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"kafka.securityProtocol": "SASL_SSL"}, "kafka.sasl.existingSecret"),
        ({"kafka.tls.caSecret": "ca"}, "kafka.securityProtocol is PLAINTEXT"),
        ({"redis.tls.caSecret": "ca"}, "redis.url is not rediss://"),
        ({"redis.url": "redis://:hunter2@redis:6379/0"}, "redis.url carries a password"),
        ({"redis.urlKey": "url"}, "redis.urlKey needs redis.existingSecret"),
    ],
)
def test_link_values_that_cannot_work_are_refused(values: dict[str, object], says: str) -> None:
    assert says in _refused(values)


def test_topics_are_created_replicated_in_a_cluster(default_render: Rendered) -> None:
    (config,) = default_render.of_kind("ConfigMap")
    assert config["data"]["ROOMCAST_KAFKA__REPLICATION_FACTOR"] == "3"
    defaults = tomllib.loads((REPO / "libs/core/src/roomcast_core/defaults.toml").read_text())
    assert defaults["kafka"]["replication_factor"] == 1  # make run's single broker


def test_the_install_example_renders_and_keeps_auth_for_backends() -> None:
    rendered = render([EXAMPLE], minimal=False)
    assert rendered.of_kind("Secret") == []
    policies = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p
        for p in rendered.of_kind("NetworkPolicy")
    }
    peers: list[Doc] = policies["auth"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "acme-backend"}}} in peers
    assert "from" not in policies["ws-edge"]["spec"]["ingress"][0]  # browsers reach the edge
    env = _env(rendered, "wsEdge")
    assert env["ROOMCAST_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert _secret_ref(env["ROOMCAST_REDIS__PASSWORD"]) == ("roomcast-redis", "password")
    for doc in rendered.docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _render_against(kubeconfig: Path, values: dict[str, object]) -> Rendered:
    """What `helm install`/`upgrade` renders against the cluster behind kubeconfig."""
    args = template_args((), values, minimal=False)
    args += ["--dry-run=server", "--kubeconfig", str(kubeconfig), "-n", NAMESPACE]
    return parse(helm(*args).stdout)


def _secret_data(rendered: Rendered) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in rendered.one("Secret")["data"].items()}


IN_CLUSTER = {
    "jwt-secret": "kept-jwt-secret-0123456789abcdefghijklmno",
    "auth-api-keys": "kept-auth-key",
    "publisher-api-keys": "kept-pub-key",
    "webhook-secret": "",
    "publisher-admin-keys": "",
}


def test_an_upgrade_keeps_the_keys_the_cluster_holds(tmp_path: Path) -> None:
    """An upgrade that does not repeat the secrets neither drops nor rotates them."""
    values: dict[str, object] = {"image.registry": "r.example.com"}
    with stub_cluster(tmp_path, {"rc-roomcast-secrets": IN_CLUSTER}) as kubeconfig:
        first = _render_against(kubeconfig, values)
        again = _render_against(kubeconfig, values)
        rotated = _render_against(kubeconfig, {**values, "secrets.publisherApiKeys": "new-key"})
    assert _secret_data(first) == IN_CLUSTER
    assert first.docs == again.docs
    assert _secret_data(rotated) == {**IN_CLUSTER, "publisher-api-keys": "new-key"}


def test_a_first_install_generates_the_keys_it_needs(tmp_path: Path) -> None:
    values: dict[str, object] = {"image.registry": "r.example.com"}
    with stub_cluster(tmp_path, {}) as kubeconfig:
        data = _secret_data(_render_against(kubeconfig, values))
    for key in ("jwt-secret", "auth-api-keys", "publisher-api-keys"):
        assert len(data[key]) >= 32, key
    assert len({data["jwt-secret"], data["auth-api-keys"], data["publisher-api-keys"]}) == 3
    assert data["webhook-secret"] == ""  # no webhooks: nothing to sign


def test_the_console_is_off_unless_admin_keys_come_from_the_secret() -> None:
    rendered = render(values={**GIVEN_SECRETS, "secrets.adminKeys": "admin-1,admin-2"})
    data = {k: base64.b64decode(v).decode() for k, v in rendered.one("Secret")["data"].items()}
    assert data["publisher-admin-keys"] == "admin-1,admin-2"
    env = {e["name"]: e for e in container(rendered.deployment("publisher"))["env"]}
    ref = env["ROOMCAST_PUBLISHER__ADMIN_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "publisher-admin-keys"
    assert ref["optional"] is True  # a Secret without it: no console, no crash
    for key in ("auth", "wsEdge"):
        names = {e["name"] for e in container(rendered.deployment(key))["env"]}
        assert "ROOMCAST_PUBLISHER__ADMIN_KEYS" not in names
