"""The bus settings: Kafka by default, Redis Streams on request, bad values named."""

from __future__ import annotations

import pytest

from roomcast_core.settings import SettingsError, load_settings


def test_kafka_is_the_default_bus() -> None:
    bus = load_settings({}).bus
    assert bus.kind == "kafka"
    assert bus.partitions == 3
    assert bus.durability == "aof"


def test_redis_bus_and_its_retention_from_the_environment() -> None:
    bus = load_settings(
        {
            "ROOMCAST_BUS__KIND": "redis",
            "ROOMCAST_BUS__PARTITIONS": "5",
            "ROOMCAST_BUS__MAX_LEN": "1000",
            "ROOMCAST_BUS__MAX_AGE": "0",
            "ROOMCAST_BUS__STREAM": "acme:bus",
            "ROOMCAST_BUS__DURABILITY": "write",
        }
    ).bus
    assert (bus.kind, bus.partitions, bus.max_len, bus.max_age) == ("redis", 5, 1000, 0.0)
    assert (bus.stream, bus.durability) == ("acme:bus", "write")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROOMCAST_BUS__KIND", "nats"),
        ("ROOMCAST_BUS__PARTITIONS", "0"),
        ("ROOMCAST_BUS__MAX_LEN", "-1"),
        ("ROOMCAST_BUS__MAX_AGE", "-5"),
        ("ROOMCAST_BUS__DURABILITY", "never"),
        ("ROOMCAST_BUS__STREAM", '""'),
    ],
)
def test_bad_bus_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert name in str(caught.value)
