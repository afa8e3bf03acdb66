"""The chaos lane in `make test`: 90 seconds with a fixed seed (`make chaos` runs 600).

Seeds that once found a defect stay here as regression cases.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.lane import ChaosConfig, run_lane

SEED = 20261207


async def test_ninety_seconds_of_faults_break_no_promise(tmp_path: Path) -> None:
    report = await run_lane(ChaosConfig(90, SEED, clients=60, rate=20.0), tmp_path)
    (tmp_path / "chaos-report.txt").write_text(report.text() + "\n\n" + report.ledger_text)
    assert report.schedule, "the lane injected no fault"
    assert report.ok, report.text() + "\n\n" + report.ledger_text
