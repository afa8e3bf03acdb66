"""Who may use the console: admin keys only; with none configured it does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.console.conftest import ADMIN, ADMIN_KEY, PUBLISH_KEY

ENDPOINTS = [
    ("GET", "/v1/admin/edges"),
    ("GET", "/v1/admin/edges/history"),
    ("GET", "/v1/admin/tail"),
    ("GET", "/v1/admin/users/u1/connections"),
    ("POST", "/v1/admin/connections/abc-def/close"),
    ("GET", "/v1/admin/rooms"),
    ("GET", "/v1/admin/rooms/1001/presence"),
    ("GET", "/v1/admin/history"),
    ("POST", "/v1/admin/messages"),
    ("POST", "/v1/admin/messages/batch"),
]


@pytest.fixture(scope="module")
def guarded(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = infra.env(
        "roomcast.console.auth",
        ROOMCAST_PUBLISHER__ADMIN_KEYS=ADMIN_KEY,
        ROOMCAST_PUBLISHER__API_KEYS=PUBLISH_KEY,
    )
    with ServiceProcess("publisher", env, tmp_path_factory.mktemp("guarded")) as proc:
        yield proc


@pytest.fixture(scope="module")
def without_console(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    env = infra.env("roomcast.console.off", ROOMCAST_PUBLISHER__API_KEYS=PUBLISH_KEY)
    with ServiceProcess("publisher", env, tmp_path_factory.mktemp("off")) as proc:
        yield proc


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {PUBLISH_KEY}",
        "Bearer wrong-key",
        f"Bearer {ADMIN_KEY}x",
        f"Basic {ADMIN_KEY}",
        "Bearer clé",
    ],
    ids=["no-key", "publishing-key", "wrong-key", "longer-key", "not-bearer", "not-ascii"],
)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_admin_apis_refuse_anything_but_an_admin_key(
    guarded: ServiceProcess, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, guarded.url + path, headers=headers) as response,
    ):
        assert response.status == 401
        body = await response.json()
        assert body["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_console_page_is_served_without_a_key(guarded: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(guarded.url + "/console/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            page = await response.text()
            assert 'id="login"' in page
        async with session.get(guarded.url + "/console/console.js") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/javascript")
        async with session.get(guarded.url + "/console/secrets.txt") as response:
            assert response.status == 404
        async with session.get(guarded.url + "/console", allow_redirects=False) as response:
            assert response.status == 308
            assert response.headers["Location"] == "/console/"


@pytest.mark.parametrize(("method", "path"), [*ENDPOINTS, ("GET", "/console/")])
async def test_without_admin_keys_the_console_does_not_exist(
    without_console: ServiceProcess, method: str, path: str
) -> None:
    async with aiohttp.ClientSession() as session:
        for headers in ({}, ADMIN, {"Authorization": f"Bearer {PUBLISH_KEY}"}):
            async with session.request(
                method, without_console.url + path, headers=headers
            ) as response:
                assert response.status == 404, (path, headers)


async def test_an_admin_key_is_logged_by_its_id_never_itself(guarded: ServiceProcess) -> None:
    url = guarded.url + "/v1/admin/users/audited/connections"
    async with aiohttp.ClientSession() as session, session.get(url, headers=ADMIN) as response:
        assert response.status == 200
    log = Path(guarded.log_path).read_text()
    assert "admin action" in log
    assert "user_connections" in log
    assert "key-" in log
    assert ADMIN_KEY not in log
