"""The domain's ports implemented on real Kafka and Redis."""
