"""Fixtures of the robustness suite (helpers live in support.py and ledger.py).

`publisher` writes roomcast records straight to the session Kafka on this test's
topic; it is the edge suite's fixture, shared rather than copied.
"""

from __future__ import annotations

from tests.integration.edge.conftest import publisher

__all__ = ["publisher"]
