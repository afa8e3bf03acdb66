"""`python -m bench [--plan full|quick|smoke]`: run the benchmark and write its results."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from bench.plan import PLANS
from bench.report import build, print_summary, write_outputs
from bench.runner import run
from bench.servers import ALL

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument(
        "--servers", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}"
    )
    parser.add_argument(
        "--feed",
        choices=("publisher", "kafka"),
        default="publisher",
        help="how roomcast is fed: through the publisher, or straight to Kafka"
        " (roomcast_redis: through a publisher on its bus, or straight to its streams)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in ALL]
    if unknown:
        parser.error(f"unknown servers: {', '.join(unknown)}")

    def log(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="roomcast-bench-") as tmp:
        plan, outcome, machine = asyncio.run(
            run(PLANS[args.plan], servers, Path(tmp), args.feed, log)
        )
    results = build(plan, servers, outcome, machine)
    paths = write_outputs(results, args.out)
    print_summary(results)
    for path in paths:
        log(f"wrote {path}")
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    sys.exit(main())
