"""The case table: each conformance case is a coroutine run on a fresh connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from roomcast_harness.services import ServiceProcess
from tests.integration.edge.conformance.rawws import RawClient

Run = Callable[[RawClient], Awaitable[None]]


class Cases:
    """Cases by Autobahn-style id ("1.1.1"); roomcast's own additions use an "x" step."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}

    def case(self, case_id: str) -> Callable[[Run], Run]:
        def register(run: Run) -> Run:
            self.add(case_id, run)
            return run

        return register

    def add(self, case_id: str, run: Run) -> None:
        assert case_id not in self.runs, f"case {case_id} twice"
        self.runs[case_id] = run

    def params(self) -> list[Any]:
        return [pytest.param(run, id=case_id) for case_id, run in self.runs.items()]


async def play(edge: ServiceProcess, run: Run, extensions: str | None = None) -> None:
    client = await RawClient.open(edge, extensions)
    try:
        await run(client)
    finally:
        client.abort()
