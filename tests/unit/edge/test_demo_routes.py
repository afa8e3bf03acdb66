"""The demo page's routes: its files, and the config that tells it where the services are."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from roomcast_core.settings import load_settings
from roomcast_edge.keys import SETTINGS_KEY
from roomcast_edge.routes import add_routes


@asynccontextmanager
async def demo_client(
    environ: Mapping[str, str],
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app[SETTINGS_KEY] = load_settings(environ)
    add_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_config_points_at_this_host_and_the_services_ports() -> None:
    environ = {"ROOMCAST_AUTH__PORT": "9180", "ROOMCAST_PUBLISHER__PORT": "9182"}
    async with demo_client(environ) as client:
        response = await client.get("/demo/config.json", headers={"Host": "demo.test:8081"})
        assert response.status == 200
        assert await response.json() == {
            "authUrl": "http://demo.test:9180",
            "publisherUrl": "http://demo.test:9182",
            "traceUiUrl": "",
        }


async def test_config_takes_the_demo_urls_when_set() -> None:
    environ = {
        "ROOMCAST_EDGE__DEMO_AUTH_URL": "https://auth.example.com/",
        "ROOMCAST_EDGE__DEMO_PUBLISHER_URL": "https://push.example.com",
    }
    async with demo_client(environ) as client:
        body = await (await client.get("/demo/config.json")).json()
    assert body["authUrl"] == "https://auth.example.com"
    assert body["publisherUrl"] == "https://push.example.com"


async def test_the_page_and_its_built_bundles_are_served() -> None:
    async with demo_client({}) as client:
        page = await client.get("/demo/")
        assert page.status == 200
        assert '<script type="module" src="demo.js">' in await page.text()
        for name in ("demo.js", "client.js", "demo.css"):
            assert (await client.get(f"/demo/{name}")).status == 200, name
        # The hand-written client is gone; the package's build replaces it.
        assert (await client.get("/demo/roomcast.js")).status == 404
