"""The Helm chart as data: render it with the real helm CLI and look things up in the result."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "roomcast"
VALUES_DIR = Path(__file__).resolve().parent / "values"
# What every render needs (a registry, a Secret): the chart refuses to render without.
MINIMAL = VALUES_DIR / "minimal.yaml"

# values key -> (component label, the service's Python module, its port setting)
COMPONENTS = {
    "auth": ("auth", "roomcast_auth", "ROOMCAST_AUTH__PORT"),
    "wsEdge": ("ws-edge", "roomcast_edge", "ROOMCAST_EDGE__PORT"),
    "publisher": ("publisher", "roomcast_publisher", "ROOMCAST_PUBLISHER__PORT"),
}

Doc = dict[str, Any]


@cache
def helm_bin() -> str:
    """The pinned helm CLI, built once by scripts/ensure-helm.sh and cached."""
    result = subprocess.run(
        [str(REPO / "scripts" / "ensure-helm.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )
    assert result.returncode == 0, f"could not get helm:\n{result.stderr}"
    return result.stdout.strip()


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_bin(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result


def set_args(values: Mapping[str, object]) -> list[str]:
    """--set-string / --set arguments: strings stay strings, everything else is typed."""
    args: list[str] = []
    for key, value in values.items():
        if isinstance(value, str):
            # strvals splits on unescaped commas.
            args += ["--set-string", f"{key}={value.replace(',', chr(92) + ',')}"]
        else:
            args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return args


def template_args(
    values_files: Iterable[Path] = (),
    values: Mapping[str, object] | None = None,
    *,
    minimal: bool = True,
) -> list[str]:
    """`helm template` of the chart with MINIMAL first (unless told not), then the rest."""
    args = ["template", "rc", str(CHART)]
    for path in [MINIMAL, *values_files] if minimal else values_files:
        args += ["-f", str(path)]
    return args + set_args(values or {})


@dataclass(frozen=True)
class Rendered:
    """Every document of one `helm template` run."""

    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> Doc:
        found = [
            d
            for d in self.of_kind(kind)
            if component is None
            or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
        return found[0]

    def deployment(self, key: str) -> Doc:
        return self.one("Deployment", COMPONENTS[key][0])

    def named(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]


def parse(text: str) -> Rendered:
    return Rendered([d for d in yaml.safe_load_all(text) if d])


def render(
    values_files: Iterable[Path] = (),
    values: Mapping[str, object] | None = None,
    *,
    minimal: bool = True,
) -> Rendered:
    return parse(helm(*template_args(values_files, values, minimal=minimal)).stdout)


def container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def container_port(ctr: Doc, port: int | str) -> int:
    """A probe's port as a number: named ports resolve through the container's ports."""
    if isinstance(port, int):
        return port
    for declared in ctr.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise AssertionError(f"probe port {port!r} is not a declared container port")
