"""A short run of the soak on each bus (`make soak` runs the long one, with a Kafka restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BUSES, Infra, infra_on
from tests.robustness.soak import SoakConfig, run_soak


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


async def test_a_short_soak_keeps_the_ledger(infra: Infra, tmp_path: Path) -> None:
    config = SoakConfig(seconds=8, clients=12, stalled=1, churn_interval=0.3)
    report, stats = await run_soak(config, infra, tmp_path, log=False)
    print(stats.text())
    print(report.text())
    assert report.ok, report.text()
    assert stats.publishes[202] >= 50, stats.text()
    assert stats.reconnects >= 5, stats.text()
    assert stats.joined > config.clients, stats.text()  # some left for good, others came
    assert sum(c.delivered for c in report.clients) > 0
