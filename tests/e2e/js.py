"""Running the JS client's Node scripts and tests from pytest (clients/js, Node 18+)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js 18+ is needed for the JS client's tests"
    assert (JS_DIR / "node_modules" / "tsx").is_dir(), "run `make install` (npm ci in clients/js)"
    return found


def run_node(args: list[str], env: dict[str, str] | None = None, timeout: float = 240) -> str:
    """`node <args>` in clients/js; fails the test with the output unless it exits 0."""
    proc = subprocess.run(
        [node(), *args],
        cwd=JS_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"node {' '.join(args)} exited {proc.returncode}:\n{output[-6000:]}")
    return output


def run_js_test(file: str, name: str, env: dict[str, str], timeout: float = 240) -> None:
    """One named test of a `node --test` file: it must run, and pass."""
    pattern = f"^{re.escape(name)}$"
    args = ["--import", "tsx", "--test", "--test-reporter=tap", f"--test-name-pattern={pattern}"]
    output = run_node([*args, file], env, timeout)
    print(output)  # the scenario's timings, shown by pytest -s or on failure
    assert re.search(r"^# pass 1$", output, re.M), output[-6000:]
    assert re.search(r"^# fail 0$", output, re.M), output[-6000:]
