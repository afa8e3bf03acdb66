"""The room search's page cursor: what a page hands back, and nothing else, is accepted."""

from __future__ import annotations

import pytest

from roomcast_publisher.adapters.redis_rooms import PageCursor


@pytest.mark.parametrize(
    ("raw", "cursor"),
    [("0", PageCursor(0, 0)), ("1234", PageCursor(1234, 0)), ("77.15", PageCursor(77, 15))],
)
def test_cursors_a_page_returns_are_read_back(raw: str, cursor: PageCursor) -> None:
    assert PageCursor.parse(raw) == cursor


@pytest.mark.parametrize(
    "raw", ["", "-1", "1.", "a", "1.x", "18446744073709551616", "1" * 21, "1.1234567", "1.2.3"]
)
def test_anything_else_is_refused(raw: str) -> None:
    assert PageCursor.parse(raw) is None
