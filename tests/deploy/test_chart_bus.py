"""The chart's bus.kind: Kafka by default, Redis Streams on the same Redis address."""

from __future__ import annotations

import pytest

from roomcast_core.settings import load_settings
from tests.deploy.chart import Rendered, helm, render, template_args


def _config(rendered: Rendered) -> dict[str, str]:
    return {k: str(v) for k, v in rendered.one("ConfigMap")["data"].items()}


def test_kafka_is_the_default_bus() -> None:
    config = _config(render())
    assert config["ROOMCAST_BUS__KIND"] == "kafka"
    assert "ROOMCAST_BUS__PARTITIONS" not in config


def test_redis_bus_reuses_the_redis_address_and_loads_as_settings() -> None:
    config = _config(
        render(
            values={
                "bus.kind": "redis",
                "bus.partitions": 5,
                "bus.maxLen": 5000,
                "redis.url": "redis://cache:6379/2",
            }
        )
    )
    assert config["ROOMCAST_BUS__KIND"] == "redis"
    assert config["ROOMCAST_REDIS__URL"] == "redis://cache:6379/2"
    # What the pods get is what the services accept.
    settings = load_settings({k: v for k, v in config.items() if k.startswith("ROOMCAST_")})
    assert settings.bus.kind == "redis"
    assert (settings.bus.partitions, settings.bus.max_len) == (5, 5000)
    assert settings.bus.durability == "aof"
    assert settings.redis.url == "redis://cache:6379/2"


@pytest.mark.parametrize(
    "values", [{"bus.kind": "nats"}, {"bus.partitions": 0}, {"bus.durability": "never"}]
)
def test_bad_bus_values_are_refused(values: dict[str, object]) -> None:
    refused = helm(*template_args((), values), check=False)
    assert refused.returncode != 0
    assert "bus" in refused.stderr
