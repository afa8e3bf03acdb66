"""Refusals: ApiErrors that also name the cause counted in roomcast_auth_failures_total.

Handlers raise them; the core error_middleware turns them into the answer, so a
compatible endpoint's `{"data": …}` body and a v1 error body go the same way.
"""

from __future__ import annotations

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_core.jsonutil import json_response

RETRY_AFTER = {"Retry-After": "1"}


class Refusal(ApiError):
    """A v1 error answer with a failure reason for the metrics."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        reason: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, headers)
        self.reason = reason


class CompatRefusal(Refusal):
    """An answer of the compatible API: `{"data": "<text>"}`."""

    def __init__(
        self, status: int, data: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, reason, data, reason, headers)
        self.data = data

    def response(self) -> web.Response:
        return json_response({"data": self.data}, status=self.status, headers=self.headers)


def failure_reason(exc: ApiError) -> str:
    return exc.reason if isinstance(exc, Refusal) else exc.code
