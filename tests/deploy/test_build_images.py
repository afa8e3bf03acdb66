"""`make images REGISTRY=…`: the build script tags each service image for the registry
the user names and pushes it there; without REGISTRY it only builds. The container
engine is a stand-in that records what it is asked to do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.deploy.chart import COMPONENTS, REPO

TAG = "0.1.0"
SERVICES = [f"roomcast-{component}" for component, _, _ in COMPONENTS.values()]


def _build(tmp_path: Path, registry: str | None) -> tuple[list[str], list[str]]:
    """(names printed, engine calls) of one scripts/build-images.sh run."""
    calls = tmp_path / "calls.log"
    engine = tmp_path / "engine"
    engine.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    engine.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REGISTRY", "IMAGE_TAG")},
        "CONTAINER_ENGINE": str(engine),
        "ROOMCAST_CACHE": str(tmp_path / "cache"),
        **({"REGISTRY": registry} if registry is not None else {}),
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), calls.read_text().splitlines()


def test_a_named_registry_gets_every_service_image_pushed(tmp_path: Path) -> None:
    printed, calls = _build(tmp_path, "registry.example.com:5000/team/")
    pushed = [f"registry.example.com:5000/team/{name}:{TAG}" for name in SERVICES]
    assert printed == pushed
    for name, target in zip(SERVICES, pushed, strict=True):
        assert f"tag {name}:{TAG} {target}" in calls
        assert f"push {target}" in calls
    # The base images stay local: only the three services go to the registry.
    assert len([c for c in calls if c.startswith("push ")]) == 3


def test_without_a_registry_nothing_is_pushed(tmp_path: Path) -> None:
    printed, calls = _build(tmp_path, None)
    assert printed == [f"{name}:{TAG}" for name in SERVICES]
    assert not [c for c in calls if c.startswith(("push ", "tag "))]
    assert len([c for c in calls if c.startswith("build ")]) == 5  # 2 base stages + 3 services
