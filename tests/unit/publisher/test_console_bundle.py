"""The console's committed bundle is what its locked sources build, and they type-check.

The publisher serves the built page from its package, so a fresh clone needs no
Node.js to run; this test (with `npm ci`, run by `make install`) keeps it honest.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SOURCE = REPO / "services/publisher/console"
PAGE = REPO / "services/publisher/src/roomcast_publisher/console_page"


@pytest.fixture(scope="module")
def tools() -> Path:
    assert shutil.which("npm"), "Node.js and npm are installed by `make install`"
    bin_dir = SOURCE / "node_modules/.bin"
    assert (bin_dir / "esbuild").exists(), (
        "run `make install` (npm ci in services/publisher/console)"
    )
    return bin_dir


def test_the_committed_bundle_is_built_from_the_sources(tools: Path, tmp_path: Path) -> None:
    script = json.loads((SOURCE / "package.json").read_text())["scripts"]["build"]
    argv = shlex.split(script)
    [outfile] = [a for a in argv if a.startswith("--outfile=")]
    argv[argv.index(outfile)] = f"--outfile={tmp_path / 'console.js'}"
    argv[0] = str(tools / argv[0])
    subprocess.run(argv, cwd=SOURCE, check=True, capture_output=True, timeout=120)
    for name in ("console.js", "console.css"):
        built = (tmp_path / name).read_bytes()
        assert built == (PAGE / name).read_bytes(), (
            f"{name} is stale: run `npm run build` in services/publisher/console"
        )


def test_the_sources_type_check_strictly(tools: Path) -> None:
    done = subprocess.run(
        [str(tools / "tsc"), "--noEmit"], cwd=SOURCE, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((SOURCE / "tsconfig.json").read_text())["compilerOptions"]["strict"] is True


def test_the_page_loads_only_its_own_files() -> None:
    page = (PAGE / "index.html").read_text()
    assert '<script src="console.js"></script>' in page
    assert "http://" not in page
    assert "https://" not in page
