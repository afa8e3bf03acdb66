"""Redis key layout shared by auth (writer) and ws-edge (reader).

roomcast:hb:<jti>        last HTTP heartbeat of a token, epoch milliseconds as text;
                         TTL = the heartbeat timeout, so presence means "alive".
                         Edges read many with one MGET per check.
roomcast:revoked:<jti>   "1" while a revoked token would still be valid; TTL = until exp.
roomcast:revocations     pub/sub channel; auth publishes the jti of each revocation so
                         edges close its connections at once.
roomcast:idem:<id>       publisher's idempotency record for a message_id.
"""

from __future__ import annotations

PREFIX = "roomcast:"
REVOCATION_CHANNEL = "roomcast:revocations"


def heartbeat_key(jti: str) -> str:
    return f"{PREFIX}hb:{jti}"


def revoked_key(jti: str) -> str:
    return f"{PREFIX}revoked:{jti}"


def idempotency_key(message_id: str) -> str:
    return f"{PREFIX}idem:{message_id}"
