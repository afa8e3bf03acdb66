"""`make run` installs the runtime only: the lock's runtime set holds no test tool, and
every uv command `make run` would run stays inside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What only the tests, the linters and the benchmarks use (the dev dependency group).
DEV_ONLY = {"pytest", "mypy", "ruff", "playwright", "matplotlib", "schemathesis", "websocat"}


def _uv() -> list[str]:
    found = subprocess.run(
        [str(ROOT / "scripts" / "ensure-uv.sh")], capture_output=True, text=True, check=True
    )
    return found.stdout.split()


def test_the_locked_runtime_set_has_no_dev_tool_and_the_lock_is_current() -> None:
    uv = _uv()
    subprocess.run([*uv, "lock", "--check", "--offline"], cwd=ROOT, check=True, timeout=120)
    runtime = ["--frozen", "--no-dev", "--no-hashes", "--no-emit-workspace"]
    exported = subprocess.run(
        [*uv, "export", *runtime, "--format", "requirements-txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    names = {line.split("==")[0] for line in exported.splitlines() if "==" in line}
    assert {"aiohttp", "aiokafka", "redis", "dynaconf", "pyjwt"} <= names
    assert not names & DEV_ONLY


def test_make_run_syncs_without_the_dev_group() -> None:
    planned = subprocess.run(
        ["make", "-n", "run", "BUS=redis"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    uv_lines = [line for line in planned if " sync " in line or " run " in line]
    assert any("roomcast-harness stack" in line for line in uv_lines), planned
    for line in uv_lines:
        # `uv run` would otherwise sync the default groups, dev included, first.
        assert "--no-dev" in line if " sync " in line else "--no-sync" in line, line
