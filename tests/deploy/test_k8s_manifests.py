"""k8s/ holds the chart rendered by `make k8s`: never hand-edited, never stale."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from tests.deploy.chart import REPO

K8S = REPO / "k8s"


def _render_into(out: Path) -> dict[str, str]:
    subprocess.run(
        [str(REPO / "scripts" / "render-k8s.sh"), str(out)],
        check=True,
        capture_output=True,
        timeout=1500,
    )
    return {p.name: p.read_text() for p in sorted(out.glob("*.yaml"))}


def test_k8s_is_up_to_date_with_the_chart(tmp_path: Path) -> None:
    fresh = _render_into(tmp_path / "k8s")
    committed = {p.name: p.read_text() for p in sorted(K8S.glob("*.yaml"))}
    assert set(committed) == set(fresh), "k8s/ is out of date: run `make k8s`"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], f"k8s/ is out of date ({', '.join(stale)}): run `make k8s`"


def test_k8s_manifests_are_valid_and_carry_no_secret() -> None:
    docs = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    kinds = [doc["kind"] for doc in docs]
    assert kinds.count("Deployment") == 3
    assert "Secret" not in kinds  # operators create roomcast-secrets themselves
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        assert doc["metadata"]["name"].startswith("roomcast")
