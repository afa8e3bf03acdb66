"""Who a token is issued to: the compatible rules shared by /get/token and /v1/tokens."""

from __future__ import annotations

from dataclasses import dataclass

# strconv.ParseBool's spellings: the earlier Go service parsed isLogin with it.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class InvalidIdentity(ValueError):
    """The parameters do not name anybody a token can be issued to."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The token's `sub` (user when logged in, else device) and `did` (the device)."""

    subject: str
    device_id: str


def parse_flag(raw: str | None) -> bool:
    """isLogin of the compatible API: absent or empty means false; other words are refused."""
    if raw is None or raw == "":
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidIdentity(f"isLogin must be true or false, got {raw!r}")


def _given(value: str | None) -> str | None:
    # An empty or blank id counts as absent, as an empty query parameter always did.
    return value if value is not None and value.strip() else None


def identity_for(device_id: str | None, user_id: str | None, is_login: bool) -> Identity:
    """A logged-in token needs the user id; an anonymous one needs the device id.

    `did` falls back to the user id when a logged-in client sends no device id.
    """
    device, user = _given(device_id), _given(user_id)
    if is_login:
        if user is None:
            raise InvalidIdentity("user_id is required when is_login is true")
        return Identity(subject=user, device_id=device or user)
    if device is None:
        raise InvalidIdentity("device_id is required when is_login is false")
    return Identity(subject=device, device_id=device)
