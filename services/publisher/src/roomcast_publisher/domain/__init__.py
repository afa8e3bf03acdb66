"""Pure publishing logic: no Redis, Kafka or HTTP imports here."""
