"""OpenAPI document, CORS, and the operational endpoints of the auth service."""

from __future__ import annotations

from tests.integration.auth.conftest import CORS_ORIGIN, MAX_TTL, Http

DOCUMENTED = {
    "/get/token": "get",
    "/heartbeat": "get",
    "/v1/tokens": "post",
    "/v1/heartbeat": "post",
    "/v1/tokens/{token_id}/revoke": "post",
    "/.well-known/jwks.json": "get",
    "/openapi.json": "get",
    "/health": "get",
    "/livez": "get",
    "/readyz": "get",
    "/metrics": "get",
}


async def test_openapi_describes_every_endpoint(http: Http, auth_url: str) -> None:
    reply = await http.get(auth_url + "/openapi.json")
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.")
    assert {path: next(iter(ops)) for path, ops in document["paths"].items()} == DOCUMENTED
    schemas = document["components"]["schemas"]
    request = schemas["TokenRequest"]
    assert request["additionalProperties"] is False
    assert request["required"] == ["is_login"]
    ttl = next(o for o in request["properties"]["ttl"]["anyOf"] if o.get("type") == "integer")
    assert ttl["maximum"] == MAX_TTL
    assert ttl["minimum"] == 1
    assert set(schemas["TokenResponse"]["properties"]) == {"token", "token_id", "expires_at"}
    body = document["paths"]["/v1/tokens"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenRequest"
    }
    assert "201" in document["paths"]["/v1/tokens"]["post"]["responses"]


async def test_cors_for_the_configured_origin_only(http: Http, auth_url: str) -> None:
    preflight = await http.request(
        "OPTIONS",
        auth_url + "/v1/tokens",
        headers={
            "Origin": CORS_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = await http.get(
        auth_url + "/get/token", params={"deviceId": "d"}, headers={"Origin": CORS_ORIGIN}
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    refused = await http.get(
        auth_url + "/get/token",
        params={"deviceId": "d"},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status == 200
    assert "Access-Control-Allow-Origin" not in refused.headers
    error = await http.post(auth_url + "/v1/tokens", data=b"{", headers={"Origin": CORS_ORIGIN})
    assert error.status == 400
    assert error.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN


async def test_operational_endpoints(http: Http, auth_url: str) -> None:
    health = await http.get(auth_url + "/health")
    assert (health.status, health.text) == (200, '{"status":"healthy"}')
    assert (await http.get(auth_url + "/livez")).status == 200
    ready = await http.get(auth_url + "/readyz")
    assert (ready.status, ready.body) == (200, {"status": "ready"})
    metrics = await http.get(auth_url + "/metrics")
    assert metrics.status == 200
    for name in (
        "roomcast_auth_tokens_issued_total",
        "roomcast_auth_heartbeats_total",
        "roomcast_auth_revocations_total",
        "roomcast_auth_failures_total",
    ):
        assert f"# TYPE {name} counter" in metrics.text
