from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from roomcast_core.api import ApiError, key_matches, openapi_document, schema_of, validate


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    count: int = 1


def test_key_matches_only_listed_keys() -> None:
    assert key_matches("k2", ["k1", "k2"])
    assert not key_matches("k3", ["k1", "k2"])
    assert not key_matches(None, ["k1"])
    assert not key_matches("", ["k1"])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1], "JSON object"),
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "count": "3"}, "count"),
        ({"name": "x", "extra": 1}, "extra"),
    ],
)
def test_validate_names_the_problem(data: object, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate(Body, data)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_openapi_registers_model_schema() -> None:
    components: dict[str, object] = {}
    ref = schema_of(Body, components)
    document = openapi_document("t", "1", {}, components)
    assert ref == {"$ref": "#/components/schemas/Body"}
    assert document["components"]["schemas"]["Body"]["required"] == ["name"]
    assert document["openapi"].startswith("3.")


async def test_aiohttp_errors_become_json_errors() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from roomcast_core.api import error_middleware

    async def only_get(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/only-get", only_get)
    async with TestClient(TestServer(app)) as client:
        missing = await client.get("/nope")
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "not_found"
        wrong = await client.post("/only-get")
        assert wrong.status == 405
        assert (await wrong.json())["error"]["code"] == "method_not_allowed"
        assert "GET" in wrong.headers["Allow"]


def test_credentials_that_are_not_ascii_match_no_key() -> None:
    # aiohttp passes header bytes that are not UTF-8 on as surrogate escapes.
    undecodable = b"\xff\xfe".decode("utf-8", "surrogateescape")
    assert not key_matches(undecodable, ["k1"])
    assert not key_matches("clé", ["clé"])
