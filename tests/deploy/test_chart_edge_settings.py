"""The edge's settings in the chart: they reach the edge's environment as the service reads
them, and the schema refuses what the service would refuse."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from roomcast_core.settings import Settings, load_settings
from tests.deploy.chart import REPO, Rendered, container, helm, render, template_args


def edge_env(rendered: Rendered) -> dict[str, str]:
    """What the edge's process sees: its ConfigMap, then its own plain env entries."""
    ctr = container(rendered.deployment("wsEdge"))
    names = {ref["configMapRef"]["name"] for ref in ctr["envFrom"] if "configMapRef" in ref}
    env: dict[str, str] = {}
    for config in rendered.of_kind("ConfigMap"):
        if config["metadata"]["name"] in names:
            env.update({k: str(v) for k, v in config["data"].items()})
    env.update({e["name"]: str(e["value"]) for e in ctr["env"] if "value" in e})
    return env


def edge_settings(rendered: Rendered) -> Settings:
    env = edge_env(rendered)
    return load_settings({k: v for k, v in env.items() if k.startswith("ROOMCAST_")})


def test_ingest_reaches_the_edge() -> None:
    rendered = render(values={"services.wsEdge.ingest": "shared"})
    assert edge_settings(rendered).edge.ingest == "shared"


def test_refresh_grace_reaches_the_edge(tmp_path: Path) -> None:
    rendered = render(values={"services.wsEdge.refreshGrace": 40})
    assert edge_env(rendered)["ROOMCAST_EDGE__REFRESH_GRACE"] == "40"
    assert edge_settings(rendered).edge.refresh_grace == 40
    # A fraction of a second is a valid grace too (from a values file: --set keeps it text).
    values = tmp_path / "grace.yaml"
    values.write_text("services: {wsEdge: {refreshGrace: 2.5}}\n")
    assert edge_settings(render([values])).edge.refresh_grace == 2.5


def test_presence_and_webhook_values_reach_the_edge() -> None:
    settings = edge_settings(
        render(
            values={
                "services.wsEdge.presenceTtl": 12,
                "services.wsEdge.presenceMaxMembers": 50,
                "services.wsEdge.presenceEvents": True,
                "webhooks.urls": "https://a.example.com/hook,https://b.example.com/hook",
                "webhooks.timeout": 3,
                "webhooks.retryFor": 7200,
            }
        )
    )
    assert (settings.edge.presence_ttl, settings.edge.presence_max_members) == (12, 50)
    assert settings.edge.presence_events is True
    assert settings.webhooks.urls == ("https://a.example.com/hook", "https://b.example.com/hook")
    assert (settings.webhooks.timeout, settings.webhooks.retry_for) == (3, 7200)


def test_chart_defaults_are_the_service_defaults(default_render: Rendered) -> None:
    """An operator who sets nothing gets what the service would pick on its own."""
    chart = edge_settings(default_render)
    service = load_settings({})
    assert chart.edge == service.edge
    assert service.edge.ingest == "all"
    assert chart.webhooks == service.webhooks
    assert chart.bus == service.bus
    # The Redis bus's own values are rendered only for it: they too are the defaults.
    redis_bus = edge_settings(render(values={"bus.kind": "redis"})).bus
    assert redis_bus.kind == "redis"
    assert dataclasses.replace(redis_bus, kind="kafka") == service.bus


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"services.wsEdge.refreshGrace": "soon"}, "/services/wsEdge/refreshGrace"),
        ({"services.wsEdge.refreshGrace": 0}, "/services/wsEdge/refreshGrace"),
        ({"services.wsEdge.refreshGrace": -5}, "/services/wsEdge/refreshGrace"),
        ({"services.wsEdge.presenceTtl": 0}, "/services/wsEdge/presenceTtl"),
        ({"services.wsEdge.presenceMaxMembers": 0}, "/services/wsEdge/presenceMaxMembers"),
        ({"services.wsEdge.presenceEvents": "maybe"}, "/services/wsEdge/presenceEvents"),
        ({"services.wsEdge.ingest": "some"}, "/services/wsEdge/ingest"),
        ({"webhooks.timeout": 0}, "/webhooks/timeout"),
        ({"webhooks.urls": 5}, "/webhooks/urls"),
    ],
)
def test_schema_refuses_bad_edge_values(values: dict[str, object], where: str) -> None:
    refused = helm(*template_args((), values), check=False)
    assert refused.returncode != 0
    assert where in refused.stderr, refused.stderr


# Settings of defaults.toml's [edge], [webhooks] and [bus] the chart leaves to the
# service's default (or to services.wsEdge.extraEnv), and why.
NOT_CHART_VALUES = {
    "edge.host": "the container listens on every address; the Service picks the port",
    "edge.presence": "off only to measure what presence costs",
    "edge.trace_id_in_meta": "a debugging aid, set through extraEnv",
    "edge.trace_ui_url": "a link of the local demo page",
    "edge.demo_auth_url": "where the demo page gets tokens; set through extraEnv",
    "edge.demo_publisher_url": "where the demo page publishes; set through extraEnv",
    "edge.group": "one release's edges share the default group; extraEnv for another",
    "webhooks.secret": "comes from the Secret's webhook-secret",
}


def test_every_operator_setting_of_the_edge_is_a_chart_value() -> None:
    defaults = tomllib.loads(
        (REPO / "libs/core/src/roomcast_core/defaults.toml").read_text(encoding="utf-8")
    )
    env = edge_env(render(values={"bus.kind": "redis"}))
    secret_env = {
        e["name"] for e in container(render().deployment("wsEdge"))["env"] if "valueFrom" in e
    }
    missing = [
        f"{section}.{name}"
        for section in ("edge", "webhooks", "bus")
        for name in defaults[section]
        if f"{section}.{name}" not in NOT_CHART_VALUES
        and f"ROOMCAST_{section.upper()}__{name.upper()}" not in env
    ]
    assert missing == [], "settings without a chart value (add one, or say why not)"
    assert "ROOMCAST_WEBHOOKS__SECRET" in secret_env
    # The list of exceptions names only real settings.
    for setting in NOT_CHART_VALUES:
        section, name = setting.split(".")
        assert name in defaults[section], setting


def test_every_edge_tuning_value_reaches_the_edge() -> None:
    settings = edge_settings(
        render(
            values={
                "services.wsEdge.maxSubscriptions": 8,
                "services.wsEdge.maxFrameBytes": 4096,
                "services.wsEdge.maxFragments": 16,
                "services.wsEdge.requestRate": 20,
                "services.wsEdge.maxOutboundBytes": 4_194_304,
                "services.wsEdge.compression": True,
                "services.wsEdge.historySize": 5000,
                "services.wsEdge.historyAge": 120,
                "services.wsEdge.maxReplay": 2000,
                "services.wsEdge.archiveReaders": 2,
                "services.wsEdge.partitionCheckInterval": 15,
                "webhooks.retryBase": 1,
                "webhooks.retryMax": 30,
                "webhooks.stream": "hooks:outbox",
                "bus.kind": "redis",
                "bus.stream": "pushes",
            }
        )
    )
    edge = settings.edge
    assert (edge.max_subscriptions, edge.max_frame_bytes, edge.max_fragments) == (8, 4096, 16)
    assert (edge.request_rate, edge.max_outbound_bytes, edge.compression) == (20, 4_194_304, True)
    assert (edge.history_size, edge.history_age, edge.max_replay) == (5000, 120, 2000)
    assert (edge.archive_readers, edge.partition_check_interval) == (2, 15)
    hooks = settings.webhooks
    assert (hooks.retry_base, hooks.retry_max, hooks.stream) == (1, 30, "hooks:outbox")
    assert settings.bus.stream == "pushes"


def test_extra_env_still_overrides_a_chart_value(all_on_render: Rendered) -> None:
    env = container(all_on_render.deployment("wsEdge"))["env"]
    extra = {e["name"]: e["value"] for e in env if "value" in e}
    assert extra["ROOMCAST_EDGE__TRACE_ID_IN_META"] == "true"
    assert edge_settings(all_on_render).edge.trace_id_in_meta is True
    assert edge_settings(all_on_render).edge.compression is True


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"services.wsEdge.maxSubscriptions": 0}, "/services/wsEdge/maxSubscriptions"),
        ({"services.wsEdge.requestRate": 0}, "/services/wsEdge/requestRate"),
        ({"services.wsEdge.maxOutboundBytes": "1Mi"}, "/services/wsEdge/maxOutboundBytes"),
        ({"services.wsEdge.compression": "gzip"}, "/services/wsEdge/compression"),
        ({"services.wsEdge.archiveReaders": 0}, "/services/wsEdge/archiveReaders"),
        ({"services.wsEdge.historyAge": -1}, "/services/wsEdge/historyAge"),
        ({"webhooks.retryBase": 0}, "/webhooks/retryBase"),
        ({"webhooks.stream": ""}, "/webhooks/stream"),
        ({"bus.stream": ""}, "/bus/stream"),
    ],
)
def test_schema_refuses_bad_tuning_values(values: dict[str, object], where: str) -> None:
    refused = helm(*template_args((), values), check=False)
    assert refused.returncode != 0
    assert where in refused.stderr, refused.stderr
