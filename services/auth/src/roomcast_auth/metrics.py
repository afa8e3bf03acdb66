"""The auth service's Prometheus metrics, registered in the app's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True, slots=True)
class AuthMetrics:
    tokens_issued: Counter
    heartbeats: Counter
    revocations: Counter
    failures: Counter
    redis_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AuthMetrics:
        return cls(
            tokens_issued=Counter(
                "roomcast_auth_tokens_issued",
                "Tokens issued, by /get/token and /v1/tokens together",
                registry=registry,
            ),
            heartbeats=Counter(
                "roomcast_auth_heartbeats",
                "Heartbeats recorded in Redis",
                registry=registry,
            ),
            revocations=Counter(
                "roomcast_auth_revocations",
                "Tokens revoked",
                registry=registry,
            ),
            failures=Counter(
                "roomcast_auth_failures",
                "Refused or failed requests, by reason (invalid_request, unauthorized, "
                "expired, bad_signature, revoked, redis_unavailable, ...)",
                ["reason"],
                registry=registry,
            ),
            redis_seconds=Histogram(
                "roomcast_auth_redis_seconds",
                "Duration of Redis calls made for requests, failed ones included",
                ["operation"],
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5),
                registry=registry,
            ),
        )
