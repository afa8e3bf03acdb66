"""Real implementations of the edge's ports: Kafka source, Redis presence and revocations."""
