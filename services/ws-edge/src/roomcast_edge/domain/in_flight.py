"""Requests of one kind in progress per token, at most a few each.

A token is one client's: it may ask again as soon as an answer came, but never
keep more than `limit` of these requests going at once on an edge.
"""

from __future__ import annotations


class InFlight:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held: dict[str, int] = {}

    def enter(self, owner: str) -> bool:
        """Count one more request of `owner`; False (nothing counted) over the limit."""
        held = self._held.get(owner, 0)
        if held >= self._limit:
            return False
        self._held[owner] = held + 1
        return True

    def leave(self, owner: str) -> None:
        left = self._held[owner] - 1
        if left:
            self._held[owner] = left
        else:
            del self._held[owner]

    def __len__(self) -> int:
        """Tokens with a request in progress."""
        return len(self._held)
