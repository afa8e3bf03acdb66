"""roomcast asyncio client."""

from roomcast_client.client import HandshakeRefused, Push, RequestFailed, RoomcastClient
from roomcast_client.http import ApiCallFailed, fetch_token, publish
from roomcast_client.positions import PositionVector

__all__ = [
    "ApiCallFailed",
    "HandshakeRefused",
    "PositionVector",
    "Push",
    "RequestFailed",
    "RoomcastClient",
    "fetch_token",
    "publish",
]
