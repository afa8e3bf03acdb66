"""Settings: dynaconf defaults plus ROOMCAST_* environment, validated once at start.

The environment is read by us, not by dynaconf directly, so that Kubernetes
service-link variables (``ROOMCAST_PORT=tcp://…``, ``ROOMCAST_AUTH_SERVICE_HOST``)
can never turn into settings: a Service that happens to be called ``roomcast``
must not move a port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dynaconf import Dynaconf, ValidationError, Validator
from dynaconf.utils.parse_conf import parse_conf_data

from roomcast_core.workers import worker_count

PREFIX = "ROOMCAST_"
DEV_SECRET = "roomcast-local-development-secret-change-me"  # noqa: S105 - local mode only

# What Kubernetes injects for every Service in the namespace: FOO_SERVICE_HOST,
# FOO_SERVICE_PORT[_NAME], FOO_PORT, FOO_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR].
# A Service name cannot end in "-", so FOO never ends in "_": our own nested
# names (ROOMCAST_EDGE__PORT) can never look like a link.
_SERVICE_LINK = re.compile(
    r"^[A-Z0-9_]*[A-Z0-9]_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$"
)


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
CREDENTIALS = frozenset(
    {"redis.username", "redis.password", "kafka.sasl_username", "kafka.sasl_password"}
)


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str
    format: str


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    timeout: float
    # kept apart from the URL so that it can come from a Secret; wins over the URL's
    username: str = ""
    password: str = ""
    # rediss:// only: the CA that signed the server's certificate (empty: the system's),
    # and a client certificate with its key for mutual TLS
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str
    topic: str
    partitions: int
    replication_factor: int
    request_timeout: float
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    security_protocol: str = "PLAINTEXT"
    # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    # SSL / SASL_SSL: the CA of the brokers' certificates (empty: the system's), and a
    # client certificate with its key for mutual TLS
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""


@dataclass(frozen=True, slots=True)
class BusSettings:
    # "kafka" or "redis" (Redis Streams)
    kind: str
    # Redis Streams: streams (partitions), their key prefix, retention (MAXLEN ~ entries
    # per stream, MINID ~ seconds, 0 = no age bound) and what a 202 waits for
    partitions: int
    stream: str
    max_len: int
    max_age: float
    durability: str


@dataclass(frozen=True, slots=True)
class JwtSettings:
    secret: str
    algorithm: str
    ttl: int
    max_ttl: int
    private_key_file: str
    kid: str
    jwks_file: str
    jwks_url: str
    previous_secrets: tuple[str, ...]
    leeway: int
    jwks_timeout: float


@dataclass(frozen=True, slots=True)
class AuthSettings:
    host: str
    port: int
    api_keys: tuple[str, ...]
    cors_origins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    host: str
    port: int
    heartbeat_timeout: float
    heartbeat_check_interval: float
    max_rooms: int
    max_subscriptions: int
    # presence: kept at all (off only to measure its cost), seconds a dead edge's
    # members outlive it, members listed at most, join/leave pushes to room members
    presence: bool
    presence_ttl: float
    presence_max_members: int
    presence_events: bool
    max_connections: int
    max_frame_bytes: int
    max_fragments: int
    request_rate: float
    max_outbound_bytes: int
    history_size: int
    history_age: float
    history_bytes: int
    max_replay: int
    # readers of the bus's log at once per edge (history reads, deep recoveries)
    archive_readers: int
    partition_check_interval: float
    drain_seconds: float
    compression: bool
    trace_id_in_meta: bool
    trace_ui_url: str
    # where the demo page finds auth and the publisher; empty: this host, their ports
    demo_auth_url: str
    demo_publisher_url: str
    refresh_grace: float
    # processes sharing the port (roomcast_core.workers); `auto` resolved at load
    workers: int = 1
    # browser origins allowed to open /sse and POST its requests from another origin
    cors_origins: tuple[str, ...] = ()
    # "all": every edge reads every partition; "shared": the edges of one deployment
    # split the partitions (consumer group `group`) and route messages to each other
    ingest: str = "all"
    group: str = "roomcast-edge"


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    host: str
    port: int
    api_keys: tuple[str, ...]
    # keys of the operator console and /v1/admin/*, never publishing keys
    admin_keys: tuple[str, ...]
    max_payload_bytes: int
    max_batch: int
    idempotency_window: int
    cors_origins: tuple[str, ...]
    workers: int = 1


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    urls: tuple[str, ...]
    secret: str
    # seconds a receiver has to answer one delivery
    timeout: float
    # the first retry's delay in seconds, doubled per attempt up to retry_max
    retry_base: float
    retry_max: float
    # seconds an undelivered batch is retried before it is given up
    retry_for: float
    # the outbox (a Redis stream)
    stream: str


@dataclass(frozen=True, slots=True)
class Settings:
    mode: str
    log: LogSettings
    redis: RedisSettings
    kafka: KafkaSettings
    bus: BusSettings
    jwt: JwtSettings
    auth: AuthSettings
    edge: EdgeSettings
    webhooks: WebhookSettings
    publisher: PublisherSettings

    @property
    def production(self) -> bool:
        return self.mode == "production"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_port(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= 65535


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _is_workers(value: Any) -> bool:
    try:
        worker_count(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_list_like(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


def _validators() -> list[Validator]:
    def check(names: list[str], cond: Any, what: str) -> list[Validator]:
        return [
            Validator(
                n,
                condition=cond,
                messages={"condition": f"{{name}} must be {what}, got {{value!r}}"},
            )
            for n in names
        ]

    return [
        Validator("mode", is_in=["local", "production"]),
        Validator(
            "log.level",
            is_in=["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"],
        ),
        Validator("log.format", is_in=["json", "text"]),
        Validator("bus.kind", is_in=["kafka", "redis"]),
        Validator("kafka.security_protocol", is_in=list(KAFKA_PROTOCOLS)),
        Validator("kafka.sasl_mechanism", is_in=list(SASL_MECHANISMS)),
        Validator("edge.ingest", is_in=["all", "shared"]),
        Validator("bus.durability", is_in=["aof", "write"]),
        *check(
            ["bus.partitions", "bus.max_len"],
            lambda v: _is_int(v) and v > 0,
            "a positive whole number",
        ),
        *check(["bus.max_age"], lambda v: _is_number(v) and v >= 0, "a number >= 0"),
        *check(["bus.stream"], lambda v: isinstance(v, str) and bool(v), "non-empty text"),
        Validator("jwt.algorithm", is_in=["HS256", "EdDSA", "ES256"]),
        *check(["auth.port", "edge.port", "publisher.port"], _is_port, "a port number (0-65535)"),
        *check(["edge.workers", "publisher.workers"], _is_workers, "a whole number >= 1 or auto"),
        *check(
            [
                "redis.timeout",
                "kafka.request_timeout",
                "edge.heartbeat_timeout",
                "edge.heartbeat_check_interval",
                "edge.request_rate",
                "edge.history_age",
                "edge.partition_check_interval",
                "edge.drain_seconds",
                "edge.refresh_grace",
                "edge.presence_ttl",
                "webhooks.timeout",
                "webhooks.retry_base",
                "webhooks.retry_max",
                "webhooks.retry_for",
                "jwt.jwks_timeout",
            ],
            _is_positive,
            "a positive number",
        ),
        *check(
            [
                "kafka.partitions",
                "kafka.replication_factor",
                "jwt.ttl",
                "jwt.max_ttl",
                "edge.max_rooms",
                "edge.max_subscriptions",
                "edge.presence_max_members",
                "edge.max_connections",
                "edge.max_frame_bytes",
                "edge.max_fragments",
                "edge.max_outbound_bytes",
                "edge.history_size",
                "edge.history_bytes",
                "edge.max_replay",
                "edge.archive_readers",
                "publisher.max_payload_bytes",
                "publisher.max_batch",
                "publisher.idempotency_window",
            ],
            lambda v: _is_int(v) and v > 0,
            "a positive whole number",
        ),
        *check(["jwt.leeway"], lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
        *check(
            [
                "redis.url",
                "redis.username",
                "redis.password",
                "redis.ca_file",
                "redis.cert_file",
                "redis.key_file",
                "kafka.bootstrap_servers",
                "kafka.topic",
                "kafka.sasl_username",
                "kafka.sasl_password",
                "kafka.ssl_ca_file",
                "kafka.ssl_cert_file",
                "kafka.ssl_key_file",
                "jwt.secret",
                "jwt.private_key_file",
                "jwt.kid",
                "jwt.jwks_file",
                "jwt.jwks_url",
                "auth.host",
                "edge.host",
                "webhooks.secret",
                "webhooks.stream",
                "edge.trace_ui_url",
                "edge.demo_auth_url",
                "edge.demo_publisher_url",
                "edge.group",
                "publisher.host",
            ],
            _is_str,
            "text",
        ),
        *check(
            ["redis.url", "kafka.bootstrap_servers", "kafka.topic"], lambda v: bool(v), "non-empty"
        ),
        *check(
            [
                "auth.api_keys",
                "publisher.api_keys",
                "publisher.admin_keys",
                "auth.cors_origins",
                "publisher.cors_origins",
                "edge.cors_origins",
                "jwt.previous_secrets",
                "webhooks.urls",
            ],
            _is_list_like,
            "a comma-separated list",
        ),
        *check(
            ["edge.compression", "edge.trace_id_in_meta", "edge.presence", "edge.presence_events"],
            lambda v: isinstance(v, bool),
            "true or false",
        ),
    ]


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ROOMCAST_* variables as nested settings, service links left out."""
    nested: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(PREFIX) or _SERVICE_LINK.match(name):
            continue
        path = [part.lower() for part in name[len(PREFIX) :].split("__")]
        if not all(path):
            continue
        node = nested
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            # Credentials are taken as written: "1234" stays text and "@..." is no directive.
            raw_text = ".".join(path) in CREDENTIALS
            node[path[-1]] = raw if raw_text else parse_conf_data(raw, tomlfy=True, box_settings={})
    return nested


def _split(value: str | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


def _known_only(overrides: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Drop names we do not know, so a stray variable cannot smuggle in state."""
    known: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in defaults:
            continue
        if isinstance(defaults[key], dict):
            if isinstance(value, dict):
                known[key] = _known_only(value, defaults[key])
        else:
            known[key] = value
    return known


def _defaults() -> dict[str, Any]:
    import tomllib

    text = resources.files("roomcast_core").joinpath("defaults.toml").read_text()
    return tomllib.loads(text)


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    needs_jwt_secret: bool = False,
) -> Settings:
    """Load, validate and freeze the settings; raise SettingsError naming the culprit."""
    import os

    defaults = _defaults()
    dyn = Dynaconf(environments=False, envvar_prefix=False, load_dotenv=False, settings_files=[])
    dyn.update(defaults)
    # Credentials bypass dynaconf, which would read "@int 5" as a directive.
    credentials: dict[str, str] = {}
    for source in (
        environment_overrides(os.environ if environ is None else environ),
        overrides or {},
    ):
        for key, value in _known_only(source, defaults).items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    if f"{key}.{sub}" in CREDENTIALS and isinstance(subvalue, str):
                        credentials[f"{key}.{sub}"] = subvalue
                    else:
                        dyn.set(f"{key}.{sub}", subvalue)
            else:
                dyn.set(key, value)
    dyn.validators.register(*_validators())
    try:
        dyn.validators.validate_all()
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise SettingsError(f"invalid setting: {_env_name(first)}") from None
    settings = _with_credentials(_freeze(dyn), credentials)
    check_links(settings.redis, settings.kafka)
    if needs_jwt_secret:
        _check_signing(settings)
    return settings


def _with_credentials(settings: Settings, credentials: Mapping[str, str]) -> Settings:
    import dataclasses

    sections: dict[str, Any] = {}
    for section in ("redis", "kafka"):
        given = {
            name.split(".", 1)[1]: value
            for name, value in credentials.items()
            if name.startswith(section + ".")
        }
        if given:
            sections[section] = dataclasses.replace(getattr(settings, section), **given)
    return dataclasses.replace(settings, **sections)


def _env_name(message: str) -> str:
    """Append the environment variable to dynaconf's message about a dotted name."""
    match = re.match(r"^([a-z_]+(?:\.[a-z_]+)*)\b", message)
    if not match:
        return message
    env = PREFIX + match.group(1).upper().replace(".", "__")
    return f"{message} ({env})"


def check_links(redis: RedisSettings, kafka: KafkaSettings) -> None:
    """Settings of the Redis and Kafka links that only make sense together."""
    from pathlib import Path

    def fail(message: str) -> None:
        raise SettingsError(f"invalid setting: {message}")

    def env(dotted: str) -> str:
        return PREFIX + dotted.upper().replace(".", "__")

    tls_redis = redis.url.startswith("rediss://")
    tls_kafka = kafka.security_protocol in ("SSL", "SASL_SSL")
    files = {
        "redis.ca_file": (redis.ca_file, tls_redis),
        "redis.cert_file": (redis.cert_file, tls_redis),
        "redis.key_file": (redis.key_file, tls_redis),
        "kafka.ssl_ca_file": (kafka.ssl_ca_file, tls_kafka),
        "kafka.ssl_cert_file": (kafka.ssl_cert_file, tls_kafka),
        "kafka.ssl_key_file": (kafka.ssl_key_file, tls_kafka),
    }
    for name, (path, tls) in files.items():
        if not path:
            continue
        if not tls:
            needs = (
                "a rediss:// redis.url"
                if name.startswith("redis")
                else ("kafka.security_protocol SSL or SASL_SSL")
            )
            fail(f"{name} is set but is used only with {needs} ({env(name)})")
        if not Path(path).is_file():
            fail(f"{name} names no readable file: {path!r} ({env(name)})")
    for section, cert, key in (
        ("redis", redis.cert_file, redis.key_file),
        ("kafka", kafka.ssl_cert_file, kafka.ssl_key_file),
    ):
        if bool(cert) != bool(key):
            prefix = "" if section == "redis" else "ssl_"
            fail(
                f"{section}.{prefix}cert_file and {section}.{prefix}key_file go together "
                f"({env(section + '.' + prefix + 'cert_file')}, "
                f"{env(section + '.' + prefix + 'key_file')})"
            )
    if kafka.security_protocol.startswith("SASL_") and not (
        kafka.sasl_username and kafka.sasl_password
    ):
        fail(
            f"kafka.sasl_username and kafka.sasl_password are required with "
            f"kafka.security_protocol {kafka.security_protocol} "
            f"(ROOMCAST_KAFKA__SASL_USERNAME, ROOMCAST_KAFKA__SASL_PASSWORD)"
        )


def _check_signing(settings: Settings) -> None:
    jwt = settings.jwt
    if jwt.algorithm == "HS256" and not jwt.secret and settings.production:
        raise SettingsError(
            "invalid setting: jwt.secret is required in production mode (ROOMCAST_JWT__SECRET)"
        )
    if jwt.algorithm == "HS256" and jwt.secret and len(jwt.secret) < 32 and settings.production:
        raise SettingsError(
            "invalid setting: jwt.secret must be at least 32 characters (ROOMCAST_JWT__SECRET)"
        )
    if settings.webhooks.urls and not settings.webhooks.secret and settings.production:
        raise SettingsError(
            "invalid setting: webhooks.secret is required in production mode when "
            "webhooks.urls is set (ROOMCAST_WEBHOOKS__SECRET)"
        )


# The demo page is served by a local edge; in local mode it may call auth and publisher.
LOCAL_DEMO_ORIGINS = ("http://localhost:8081", "http://127.0.0.1:8081")


def _origins(value: str | list[str], mode: str) -> tuple[str, ...]:
    origins = _split(value)
    return origins if origins or mode == "production" else LOCAL_DEMO_ORIGINS


def _freeze(dyn: Any) -> Settings:
    jwt = dyn.jwt
    secret = str(jwt.secret)
    if not secret and dyn.mode != "production" and jwt.algorithm == "HS256":
        secret = DEV_SECRET
    return Settings(
        mode=str(dyn.mode),
        log=LogSettings(level=str(dyn.log.level).upper(), format=str(dyn.log.format)),
        redis=RedisSettings(
            url=dyn.redis.url,
            timeout=float(dyn.redis.timeout),
            username=str(dyn.redis.username),
            password=str(dyn.redis.password),
            ca_file=str(dyn.redis.ca_file),
            cert_file=str(dyn.redis.cert_file),
            key_file=str(dyn.redis.key_file),
        ),
        kafka=KafkaSettings(
            bootstrap_servers=dyn.kafka.bootstrap_servers,
            topic=dyn.kafka.topic,
            partitions=dyn.kafka.partitions,
            replication_factor=dyn.kafka.replication_factor,
            request_timeout=float(dyn.kafka.request_timeout),
            security_protocol=str(dyn.kafka.security_protocol),
            sasl_mechanism=str(dyn.kafka.sasl_mechanism),
            sasl_username=str(dyn.kafka.sasl_username),
            sasl_password=str(dyn.kafka.sasl_password),
            ssl_ca_file=str(dyn.kafka.ssl_ca_file),
            ssl_cert_file=str(dyn.kafka.ssl_cert_file),
            ssl_key_file=str(dyn.kafka.ssl_key_file),
        ),
        bus=BusSettings(
            kind=str(dyn.bus.kind),
            partitions=dyn.bus.partitions,
            stream=str(dyn.bus.stream),
            max_len=dyn.bus.max_len,
            max_age=float(dyn.bus.max_age),
            durability=str(dyn.bus.durability),
        ),
        jwt=JwtSettings(
            secret=secret,
            algorithm=jwt.algorithm,
            ttl=jwt.ttl,
            max_ttl=jwt.max_ttl,
            private_key_file=jwt.private_key_file,
            kid=jwt.kid,
            jwks_file=jwt.jwks_file,
            jwks_url=jwt.jwks_url,
            previous_secrets=_split(jwt.previous_secrets),
            leeway=jwt.leeway,
            jwks_timeout=float(jwt.jwks_timeout),
        ),
        auth=AuthSettings(
            host=dyn.auth.host,
            port=dyn.auth.port,
            api_keys=_split(dyn.auth.api_keys),
            cors_origins=_origins(dyn.auth.cors_origins, dyn.mode),
        ),
        edge=EdgeSettings(
            host=dyn.edge.host,
            port=dyn.edge.port,
            heartbeat_timeout=float(dyn.edge.heartbeat_timeout),
            heartbeat_check_interval=float(dyn.edge.heartbeat_check_interval),
            max_rooms=dyn.edge.max_rooms,
            max_subscriptions=dyn.edge.max_subscriptions,
            presence=dyn.edge.presence,
            presence_ttl=float(dyn.edge.presence_ttl),
            presence_max_members=dyn.edge.presence_max_members,
            presence_events=dyn.edge.presence_events,
            max_connections=dyn.edge.max_connections,
            max_frame_bytes=dyn.edge.max_frame_bytes,
            max_fragments=dyn.edge.max_fragments,
            request_rate=float(dyn.edge.request_rate),
            max_outbound_bytes=dyn.edge.max_outbound_bytes,
            history_size=dyn.edge.history_size,
            history_age=float(dyn.edge.history_age),
            history_bytes=dyn.edge.history_bytes,
            max_replay=dyn.edge.max_replay,
            archive_readers=dyn.edge.archive_readers,
            partition_check_interval=float(dyn.edge.partition_check_interval),
            drain_seconds=float(dyn.edge.drain_seconds),
            compression=dyn.edge.compression,
            trace_id_in_meta=dyn.edge.trace_id_in_meta,
            trace_ui_url=dyn.edge.trace_ui_url.rstrip("/"),
            demo_auth_url=dyn.edge.demo_auth_url.rstrip("/"),
            demo_publisher_url=dyn.edge.demo_publisher_url.rstrip("/"),
            refresh_grace=float(dyn.edge.refresh_grace),
            workers=worker_count(dyn.edge.workers),
            cors_origins=_split(dyn.edge.cors_origins),
            ingest=str(dyn.edge.ingest),
            group=str(dyn.edge.group),
        ),
        webhooks=WebhookSettings(
            urls=_split(dyn.webhooks.urls),
            secret=str(dyn.webhooks.secret),
            timeout=float(dyn.webhooks.timeout),
            retry_base=float(dyn.webhooks.retry_base),
            retry_max=float(dyn.webhooks.retry_max),
            retry_for=float(dyn.webhooks.retry_for),
            stream=str(dyn.webhooks.stream),
        ),
        publisher=PublisherSettings(
            host=dyn.publisher.host,
            port=dyn.publisher.port,
            api_keys=_split(dyn.publisher.api_keys),
            admin_keys=_split(dyn.publisher.admin_keys),
            max_payload_bytes=dyn.publisher.max_payload_bytes,
            max_batch=dyn.publisher.max_batch,
            idempotency_window=dyn.publisher.idempotency_window,
            cors_origins=_origins(dyn.publisher.cors_origins, dyn.mode),
            workers=worker_count(dyn.publisher.workers),
        ),
    )
