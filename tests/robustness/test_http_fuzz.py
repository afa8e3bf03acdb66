"""Schemathesis fuzzes auth's and publisher's HTTP APIs from their own /openapi.json.

Both services run as their own processes on the session Redis and Kafka. Every
generated request (valid and invalid) must get an answer that is not a 5xx, whose
status code is one the document lists, and whose body matches the documented schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def services(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    topic = f"roomcast.test.fuzz.{uuid.uuid4().hex[:10]}"
    env = infra.env(topic, ROOMCAST_PUBLISHER__MAX_PAYLOAD_BYTES="4096")
    workdir = Path(tmp_path_factory.mktemp("http-fuzz"))
    procs = [ServiceProcess(name, env, workdir, name=name) for name in ("auth", "publisher")]
    try:
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_ready(timeout=90)
        yield {proc.name: proc.url for proc in procs}
    finally:
        for proc in procs:
            proc.stop()


def _fuzz(base_url: str) -> list[str]:
    """Run every operation of the service's document, valid and invalid data; the failures.

    Each operation runs to its end even when another failed, so one report shows all.
    """
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"unusable operation in the document: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case[Any]) -> None:
                response = case.call_and_validate(checks=CHECKS)
                calls.append(response.status_code)

            try:
                run()
            except Unsatisfiable:
                # No parameters and no body: there is nothing to make invalid.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every failing operation goes into one report
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations >= 3, f"only {operations} operations documented"
    assert len(calls) >= 10 * operations, f"only {len(calls)} calls made"
    assert any(400 <= status < 500 for status in calls), "no invalid request was refused"
    return failures


def test_auth_api_never_5xx_and_answers_as_documented(services: dict[str, str]) -> None:
    failures = _fuzz(services["auth"])
    assert not failures, "\n\n".join(failures)


def test_publisher_api_never_5xx_and_answers_as_documented(services: dict[str, str]) -> None:
    failures = _fuzz(services["publisher"])
    assert not failures, "\n\n".join(failures)
