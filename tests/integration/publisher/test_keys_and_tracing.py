"""API keys guard every publishing endpoint; a traced publish carries its context into Kafka."""

from __future__ import annotations

from roomcast_core import wire
from tests.conftest import Infra, ServiceFactory
from tests.integration.publisher.helpers import get, post, read_topic

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_api_keys_and_trace_context(
    start_service: ServiceFactory, infra: Infra, topic: str
) -> None:
    env = infra.env(
        topic,
        ROOMCAST_PUBLISHER__API_KEYS="key-one, key-two",
        OTEL_SDK_DISABLED="false",  # spans are made (no exporter): context reaches the record
    )
    publisher = start_service("publisher", env)
    one = {"payload": 1}
    for path, body in [
        ("/v1/messages", one),
        ("/v1/messages/batch", {"messages": [one]}),
        ("/push/new/score/message", {"message": "1:0"}),
    ]:
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "key-one"}]:
            reply = await post(publisher.url + path, body, headers=headers)
            assert reply.status == 401, (path, headers)
            if path.startswith("/v1/"):
                assert reply.body["error"]["code"] == "unauthorized"
                assert reply.headers["WWW-Authenticate"] == "Bearer"
            else:
                assert isinstance(reply.body["error"], str)
    assert await read_topic(infra.kafka_bootstrap, topic) == []

    parent_span = "00f067aa0ba902b7"
    traced = await post(
        publisher.url + "/v1/messages",
        {"room": "traced", "payload": 2},
        headers={
            "Authorization": "Bearer key-two",
            "traceparent": f"00-{TRACE_ID}-{parent_span}-01",
        },
    )
    assert traced.status == 202
    batch = await post(
        publisher.url + "/v1/messages/batch",
        {"messages": [one]},
        headers={"Authorization": "Bearer key-one"},
    )
    assert batch.status == 202
    score = await post(
        publisher.url + "/push/new/score/message",
        {"message": "1:0"},
        headers={"Authorization": "Bearer key-one"},
    )
    assert score.status == 200
    assert (await get(publisher.url + "/openapi.json")).status == 200  # documentation is public

    records = {r.position: r for r in await read_topic(infra.kafka_bootstrap, topic)}
    assert len(records) == 3
    record = records[traced.body["position"]]
    traceparent = record.headers["traceparent"].decode()
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != parent_span  # the producer span, a descendant of the caller's
    assert wire.header_value(list(record.headers.items()), "roomcast-message-id") == (
        traced.body["message_id"].encode()
    )
