"""`make chaos`: the chaos lane for CHAOS_SECONDS (default 600) with CHAOS_SEED.

Writes chaos-report/seed-<seed>.json and .txt and exits 1 when a promise broke.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
from pathlib import Path

from tests.chaos.lane import ChaosConfig, run_lane


async def _main() -> int:
    seconds = float(os.environ.get("CHAOS_SECONDS", "600"))
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 20))
    clients = int(os.environ.get("CHAOS_CLIENTS", "300"))
    out = Path(os.environ.get("CHAOS_REPORT_DIR", "chaos-report"))
    print(f"chaos: seed {seed}, {seconds:g} s, {clients} clients", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="roomcast-chaos-") as tmp:
        report = await run_lane(ChaosConfig(seconds, seed, clients=clients), Path(tmp))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seed-{seed}.json").write_text(json.dumps(report.as_json(), indent=2))
    (out / f"seed-{seed}.txt").write_text(report.text() + "\n\n" + report.ledger_text + "\n")
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
