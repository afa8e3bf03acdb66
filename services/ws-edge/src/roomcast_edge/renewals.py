"""Refreshes waiting for their token's revocation check (the only I/O a refresh needs).

The dispatcher vets a refresh's token without I/O; whether it was revoked is asked
of Redis here, one check per connection at a time, and the answer goes back to the
node through `apply` or `refuse`. A check still running when its connection closes
is cancelled: nothing is put in force on a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from roomcast_core.tokens import RevocationChecker, TokenError
from roomcast_edge.domain import lifetime
from roomcast_edge.domain.dispatch import Renewal

log = logging.getLogger(__name__)


class Renewing(Hashable, Protocol):
    @property
    def closed(self) -> bool: ...


C = TypeVar("C", bound=Renewing)


class Renewals(Generic[C]):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        revocations: RevocationChecker | None,
        apply: Callable[[C, Renewal], None],
        refuse: Callable[[C, Renewal, str], None],
    ) -> None:
        self._loop = loop
        self._revocations = revocations
        self._apply = apply
        self._refuse = refuse
        self._checking: dict[C, asyncio.Task[None]] = {}

    def start(self, conn: C, renewal: Renewal) -> None:
        """Put `renewal` in force once its token is known not to be revoked."""
        if conn in self._checking:
            self._refuse(conn, renewal, "a refresh of this connection is in progress")
        elif self._revocations is None:
            self._apply(conn, renewal)
        else:
            task = self._loop.create_task(self._check(conn, renewal), name="refresh")
            self._checking[conn] = task
            task.add_done_callback(lambda _: self._checking.pop(conn, None))

    def cancel(self, conn: C) -> None:
        task = self._checking.pop(conn, None)
        if task is not None:
            task.cancel()

    async def _check(self, conn: C, renewal: Renewal) -> None:
        assert self._revocations is not None
        try:
            revoked = await self._revocations.is_revoked(renewal.claims.jti)
        except Exception as exc:
            log.warning("refresh revocation check failed", extra={"error": repr(exc)})
            if not conn.closed:
                self._refuse(conn, renewal, "the token could not be checked, retry")
            return
        if conn.closed:
            return
        if revoked:
            error = TokenError("revoked", "token has been revoked")
            self._refuse(conn, renewal, lifetime.refusal_message(error))
        else:
            self._apply(conn, renewal)
