"""The edge's settings in the chart: they reach the edge's environment as the service reads
them, and the schema refuses what the service would refuse."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from roomcast_core.settings import Settings, load_settings
from tests.deploy.chart import Rendered, container, helm, render, template_args


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
        ({"webhooks.timeout": 0}, "/webhooks/timeout"),
        ({"webhooks.urls": 5}, "/webhooks/urls"),
    ],
)
def test_schema_refuses_bad_edge_values(values: dict[str, object], where: str) -> None:
    refused = helm(*template_args((), values), check=False)
    assert refused.returncode != 0
    assert where in refused.stderr, refused.stderr
