"""Redis clients built from RedisSettings: the URL, credentials kept out of it, and TLS.

Every pool of every service is made here, so a password from a Secret or a private
CA reaches all of them alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from roomcast_core.settings import RedisSettings


def redis_client(settings: RedisSettings, **options: Any) -> aioredis.Redis:
    """A client of settings.url; `options` are redis-py's (timeouts, retry, ...)."""
    url = settings.url
    if settings.username or settings.password:
        # redis-py lets the URL's own credentials win over keyword arguments: drop them,
        # so that the setting (a Secret) is what counts.
        url = _without_credentials(url)
        options["username"] = settings.username or None
        options["password"] = settings.password or None
    if url.startswith("rediss://"):
        if settings.ca_file:
            options["ssl_ca_certs"] = settings.ca_file
        if settings.cert_file:
            options["ssl_certfile"] = settings.cert_file
            options["ssl_keyfile"] = settings.key_file
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
