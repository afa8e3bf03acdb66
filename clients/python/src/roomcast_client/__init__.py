"""roomcast asyncio client."""

from roomcast_client.client import (
    HandshakeRefused,
    Push,
    RequestFailed,
    RoomcastClient,
    TokenProvider,
    TokenSource,
)
from roomcast_client.http import ApiCallFailed, fetch_token, publish
from roomcast_client.lifetime import TERMINAL_CLOSE_CODES, AfterClose, after_close
from roomcast_client.positions import PositionVector

__all__ = [
    "TERMINAL_CLOSE_CODES",
    "AfterClose",
    "ApiCallFailed",
    "HandshakeRefused",
    "PositionVector",
    "Push",
    "RequestFailed",
    "RoomcastClient",
    "TokenProvider",
    "TokenSource",
    "after_close",
    "fetch_token",
    "publish",
]
