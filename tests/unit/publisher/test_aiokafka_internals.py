"""The aiokafka internals the publisher relies on: present in the pinned release,
and a loud, named refusal at start when a release drops one."""

from __future__ import annotations

import pytest
from aiokafka.producer import message_accumulator

from roomcast_core.settings import load_settings
from roomcast_core.tokens import StartupError
from roomcast_publisher.adapters import aiokafka_internals
from roomcast_publisher.app import create_app


def test_the_installed_aiokafka_has_every_internal_the_publisher_uses() -> None:
    assert aiokafka_internals.missing_internals() == []
    aiokafka_internals.check_aiokafka()


def test_a_missing_internal_stops_the_publisher_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(message_accumulator.MessageAccumulator, "fail_all")
    with pytest.raises(StartupError, match=r"MessageAccumulator\.fail_all"):
        create_app(load_settings())


def test_an_attribute_set_in_init_is_found_and_a_renamed_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    init = message_accumulator.MessageBatch.__init__
    source_has = aiokafka_internals._has(message_accumulator.MessageBatch, "_drain_waiter")
    assert source_has

    def renamed(self: object, *args: object, **kwargs: object) -> None:
        """An __init__ that no longer sets the waiter."""

    monkeypatch.setattr(message_accumulator.MessageBatch, "__init__", renamed)
    assert "MessageBatch._drain_waiter" in aiokafka_internals.missing_internals()
    monkeypatch.setattr(message_accumulator.MessageBatch, "__init__", init)
    assert aiokafka_internals.missing_internals() == []
