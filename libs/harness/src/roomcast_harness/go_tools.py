"""Tools built from their Go modules (Toxiproxy, Jaeger) and cached per version.

``scripts/ensure-<name>.sh`` builds one once into ``~/.cache/roomcast/<name>/<version>/``
(``ROOMCAST_CACHE`` or ``XDG_CACHE_HOME`` move it); this finds the binary there and runs
the script only when it is missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def cache_dir(name: str, version: str) -> Path:
    base = os.environ.get("ROOMCAST_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roomcast"
    )
    return Path(base) / name / version


def _ensure_script(name: str) -> Path | None:
    # The script lives in the repository; an installed harness without it can still
    # use a binary that is already cached.
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "scripts" / f"ensure-{name}.sh"
        if candidate.is_file():
            return candidate
    return None


def ensure_go_tool(name: str, version: str, binary: str) -> Path:
    """Path of the cached binary, building it first if needed (minutes, once)."""
    path = cache_dir(name, version) / binary
    if os.access(path, os.X_OK):
        return path
    script = _ensure_script(name)
    if script is None:
        raise RuntimeError(f"{name} {version} is not built: run scripts/ensure-{name}.sh")
    built = subprocess.run(
        [str(script)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, f"{name.upper()}_VERSION": version},
    )
    return Path(built.stdout.strip().splitlines()[-1])
