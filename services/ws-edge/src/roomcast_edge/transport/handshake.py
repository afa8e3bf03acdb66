"""The WebSocket opening handshake (RFC 6455 section 4.2), answered without aiohttp's
WebSocketResponse: the edge writes the 101 itself and takes the socket over."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp.http import WS_KEY, ws_ext_gen, ws_ext_parse


@dataclass(frozen=True, slots=True)
class Upgrade:
    response: bytes  # the complete 101 response, headers and blank line
    deflate: int  # negotiated permessage-deflate window bits, 0 when plain


def _has_token(value: str, token: str) -> bool:
    return any(part.strip().lower() == token for part in value.split(","))


def upgrade(headers: Mapping[str, str], compression: bool) -> Upgrade | None:
    """The 101 answer to a valid upgrade request, or None when it is not one."""
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        return None
    if not _has_token(headers.get("Connection", ""), "upgrade"):
        return None
    if headers.get("Sec-WebSocket-Version", "") not in ("13", "8", "7"):
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    # SHA-1 is what RFC 6455 prescribes for the accept value; it protects nothing.
    digest = hashlib.sha1(key.encode() + WS_KEY, usedforsecurity=False).digest()
    accept = base64.b64encode(digest).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    deflate = 0
    if compression:
        deflate, notakeover = ws_ext_parse(headers.get("Sec-WebSocket-Extensions"), isserver=True)
        if deflate:
            extension = ws_ext_gen(compress=deflate, isserver=True, server_notakeover=notakeover)
            lines.append(f"Sec-WebSocket-Extensions: {extension}")
    return Upgrade(("\r\n".join(lines) + "\r\n\r\n").encode(), deflate)
