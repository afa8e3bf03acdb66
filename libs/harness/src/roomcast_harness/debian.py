"""Installing a Debian package when the program it provides is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def ensure_program(program: str, package: str) -> str:
    """Path of `program`, installing Debian's `package` first when it is not on PATH."""
    found = shutil.which(program)
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print(f"roomcast-harness: installing {package} (Debian package)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = shutil.which(program)
    if found is None:
        raise RuntimeError(f"{program} is still missing after installing {package}")
    return found
