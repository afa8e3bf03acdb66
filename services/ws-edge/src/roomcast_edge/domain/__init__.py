"""The edge's pure logic: no sockets, no Redis, no Kafka; unit-tested with plain values."""
