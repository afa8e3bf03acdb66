"""Fixtures of the deployment tests: the chart rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.chart import VALUES_DIR, Rendered, render


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render()


@pytest.fixture(scope="session")
def all_on_render() -> Rendered:
    return render([VALUES_DIR / "all-on.yaml"])
