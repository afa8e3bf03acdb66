"""The images themselves: built with podman, run with the chart's env, answering probes.

The base is a Debian 12 + Python 3.11 image built locally with debootstrap (cached in
~/.cache/roomcast; the public python image cannot be pulled everywhere). Set
ROOMCAST_PYTHON_IMAGE to build on another base instead. Each container runs the way
the chart runs it: its command, its env, read-only root, no capabilities, the chart's
user; the probes are followed as declared, the preStop command runs inside the
container, then `podman stop` sends the image's STOPSIGNAL and the container must exit
0 within terminationGracePeriodSeconds.

Where podman cannot run containers (no podman and no root to install it, or a kernel
or sandbox that refuses containers), the test is skipped and says exactly why. On a
machine where podman works: `make install` (installs Debian's podman, runc and
debootstrap) and `uv run pytest tests/deploy/test_containers.py`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Infra
from tests.deploy.chart import COMPONENTS, REPO
from tests.deploy.kubelet import PodPlan, plan, run_probes
from tests.deploy.test_kubelet_view import point_at_test_infra, render_with_free_ports

BUILD_TIMEOUT = 1500  # a first build debootstraps Debian and downloads the wheels
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _run(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
        env={**os.environ, **env},
    )


def _ulimits() -> list[str]:
    # podman raises nofile and nproc by default; sandboxes without CAP_SYS_RESOURCE refuse
    # that. Ask for no more open files than this process has, and a modest process cap
    # (a service runs one process with a few threads).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = [] if hard == resource.RLIM_INFINITY else ["--ulimit", f"nofile={soft}:{hard}"]
    return [*nofile, "--ulimit", "nproc=4096:4096"]


def _why_podman_cannot_run() -> tuple[str | None, str]:
    """(reason or None, base image): None when podman can run a container here."""
    install = _run([str(REPO / "scripts" / "ensure-podman.sh")], timeout=900)
    if shutil.which("podman") is None:
        return f"podman is not installed and could not be: {install.stderr.strip()}", ""
    base = os.environ.get("ROOMCAST_PYTHON_IMAGE", "")
    if not base:
        built = _run([str(REPO / "scripts" / "build-base-image.sh")], timeout=BUILD_TIMEOUT)
        assert built.returncode == 0, f"building the local base image failed:\n{built.stderr}"
        base = built.stdout.strip().splitlines()[-1]
    probe = _run(
        ["podman", "run", "--rm", "--network=host", *_ulimits(), base, "python3", "-c", "print(42)"]
    )
    if probe.returncode != 0 or probe.stdout.strip() != "42":
        return f"podman cannot run containers on this machine: {probe.stderr.strip()}", base
    return None, base


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """component -> image, built from this checkout."""
    reason, base = _why_podman_cannot_run()
    if reason:
        pytest.skip(reason)
    env = {"CONTAINER_ENGINE": "podman"}
    if os.environ.get("ROOMCAST_PYTHON_IMAGE"):
        env["PYTHON_IMAGE"] = base
    else:
        env["ROOMCAST_LOCAL_BASE"] = "1"
    if HOST_CA_BUNDLE.is_file():
        # Lets pip/uv inside the build trust whatever this machine trusts.
        env["CA_BUNDLE"] = str(HOST_CA_BUNDLE)
    built = _run([str(REPO / "scripts" / "build-images.sh")], timeout=BUILD_TIMEOUT, **env)
    assert built.returncode == 0, f"image build failed:\n{built.stderr[-4000:]}"
    names = built.stdout.split()
    assert len(names) == 3, built.stdout
    by_name = {name.rsplit(":", 1)[0].rsplit("/", 1)[-1]: name for name in names}
    return {component: by_name[f"roomcast-{component}"] for component, _, _ in COMPONENTS.values()}


def _inspect(image: str) -> dict[str, object]:
    result = _run(["podman", "image", "inspect", image])
    assert result.returncode == 0, result.stderr
    (info,) = json.loads(result.stdout)
    return dict(info["Config"])


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
@pytest.mark.parametrize("key", list(COMPONENTS))
def test_image_is_slim_non_root_and_stops_on_sigterm(images: dict[str, str], key: str) -> None:
    component, module, _ = COMPONENTS[key]
    config = _inspect(images[component])
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert config["Entrypoint"] == ["python", "-m", module]
    # No build tools in the final image: no uv, no compiler, no pip command.
    found = _run(
        [
            "podman", "run", "--rm", "--network=none", *_ulimits(), "--entrypoint", "sh",
            images[component], "-c", "for t in uv gcc cc pip pip3; do command -v $t; done; id -u",
        ]
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["10001"], found.stdout


@dataclass
class Container:
    spec: PodPlan
    name: str

    def running(self) -> bool:
        state = _run(["podman", "inspect", "--format", "{{.State.Running}}", self.name])
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        return _run(["podman", "logs", "--tail", "40", self.name]).stdout


@pytest.fixture
def containers(images: dict[str, str], infra: Infra, topic: str) -> Iterator[dict[str, Container]]:
    rendered, _ = render_with_free_ports()
    started: dict[str, Container] = {}
    try:
        for key in COMPONENTS:
            spec = plan(rendered, key)
            env = point_at_test_infra(spec, infra, topic)
            name = f"roomcast-test-{spec.component}-{uuid.uuid4().hex[:8]}"
            env_args = [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]
            run = _run(
                [
                    "podman", "run", "--detach", "--name", name,
                    # Host networking reaches the test's Redis/Kafka on loopback; the
                    # rendered free ports keep parallel runs apart.
                    "--network=host",
                    "--read-only", "--tmpfs", "/tmp",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "--user", f"{spec.run_as_user}:{spec.run_as_user}",
                    *_ulimits(), *env_args,
                    "--entrypoint", json.dumps(spec.command),
                    images[spec.component],
                ]
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            started[spec.component] = Container(spec, name)
        yield started
    finally:
        for container in started.values():
            _run(["podman", "rm", "--force", "--time", "0", container.name])


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_containers_answer_probes_and_stop_within_grace(containers: dict[str, Container]) -> None:
    reports = run_probes(
        [c.spec for c in containers.values()],
        exited=lambda component: not containers[component].running(),
        deadline_seconds=120,
    )
    for component, report in reports.items():
        logs = containers[component].logs()
        assert not report.exited, f"{component} container exited:\n{logs}"
        assert not report.restarted, f"{component} failed its liveness probe:\n{logs}"
        assert report.ready, f"{component} never turned ready ({report.notes}):\n{logs}"

    # The chart's preStop command, inside each container, as the kubelet runs it.
    hooks = {
        component: subprocess.Popen(
            ["podman", "exec", c.name, *c.spec.pre_stop],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for component, c in containers.items()
    }
    for component, hook in hooks.items():
        assert hook.wait(timeout=containers[component].spec.grace_seconds) == 0, component
    for component, container in containers.items():
        spec = container.spec
        # podman stop sends the image's STOPSIGNAL, waits, then SIGKILLs (exit 137).
        left = spec.grace_seconds - int(spec.pre_stop[-1])
        stop = _run(["podman", "stop", "--time", str(left), container.name], timeout=left + 60)
        assert stop.returncode == 0, stop.stderr
        code = _run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container.name])
        assert code.stdout.strip() == "0", (
            f"{component} exit {code.stdout.strip()}:\n{container.logs()}"
        )
