from __future__ import annotations

import pytest

from roomcast_auth.domain.identity import Identity, InvalidIdentity, identity_for, parse_flag


@pytest.mark.parametrize(
    ("device", "user", "is_login", "expected"),
    [
        ("d", "u", True, Identity("u", "d")),
        (None, "u", True, Identity("u", "u")),
        ("", "u", True, Identity("u", "u")),
        ("d", "u", False, Identity("d", "d")),
        ("d", None, False, Identity("d", "d")),
    ],
)
def test_subject_is_user_when_logged_in_else_device(
    device: str | None, user: str | None, is_login: bool, expected: Identity
) -> None:
    assert identity_for(device, user, is_login) == expected


@pytest.mark.parametrize(
    ("device", "user", "is_login", "fragment"),
    [
        ("d", None, True, "user_id"),
        ("d", "", True, "user_id"),
        ("d", "  ", True, "user_id"),
        (None, "u", False, "device_id"),
        ("", "u", False, "device_id"),
        (None, None, False, "device_id"),
    ],
)
def test_missing_ids_are_refused(
    device: str | None, user: str | None, is_login: bool, fragment: str
) -> None:
    with pytest.raises(InvalidIdentity, match=fragment):
        identity_for(device, user, is_login)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, False),
        ("", False),
        ("true", True),
        ("1", True),
        ("True", True),
        ("false", False),
        ("0", False),
    ],
)
def test_is_login_flag(raw: str | None, expected: bool) -> None:
    assert parse_flag(raw) is expected


@pytest.mark.parametrize("raw", ["yes", "on", "tru", " true", "2"])
def test_unknown_flags_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_flag(raw)
