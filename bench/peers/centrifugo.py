"""Benchmark peer: Centrifugo (Go), the server a user would pick instead of roomcast.

One node, memory broker (the default engine), connect tokens checked with the same HS256
secret the bench signs with, every channel open to authenticated clients (subscribe
commands need no channel token). Fed one of two ways:

- its HTTP API (`/api/batch` of `publish` commands), like the Node peer's `/publish`;
- its Kafka consumer in publication data mode: a record's value is published as is to
  the channels its `centrifugo-channels` header names. The bench produces the same wire
  records roomcast's edge consumes, so both servers pay for reading Kafka.

`low_memory` adds the WebSocket settings Centrifugo documents to cut memory per
connection (small read and write buffers, a shared pool of write buffers).

The binary is built once by scripts/ensure-centrifugo.sh (`go install`, cached).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "v6.9.1"
ROOT = Path(__file__).resolve().parent.parent.parent
ENSURE = ROOT / "scripts" / "ensure-centrifugo.sh"
WS_PATH = "/connection/websocket"
# The documented low-memory WebSocket settings.
LOW_MEMORY_WEBSOCKET = {
    "read_buffer_size": 512,
    "write_buffer_size": 512,
    "use_write_buffer_pool": True,
}


@dataclass(frozen=True, slots=True)
class KafkaSource:
    brokers: str
    topic: str
    group: str


def binary() -> Path:
    """The cached Centrifugo binary, built on first use (a few minutes, once per machine)."""
    done = subprocess.run(
        [str(ENSURE)],
        capture_output=True,
        text=True,
        env={**os.environ, "CENTRIFUGO_VERSION": VERSION},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"centrifugo {VERSION} is not available: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def config(
    port: int,
    secret: str,
    api_key: str,
    kafka: KafkaSource | None = None,
    low_memory: bool = False,
) -> dict[str, Any]:
    """Centrifugo v6's configuration document for one benchmark server."""
    document: dict[str, Any] = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "error"},
        "engine": {"type": "memory"},
        "client": {
            "token": {"hmac_secret_key": secret},
            # Room for every benchmark client's burst of pushes: never a slow-consumer close.
            "queue_max_size": 16 * 1024 * 1024,
        },
        "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
        "http_api": {"key": api_key},
        "health": {"enabled": True},
    }
    if low_memory:
        document["websocket"] = dict(LOW_MEMORY_WEBSOCKET)
    if kafka is not None:
        document["consumers"] = [
            {
                "name": "bench",
                "enabled": True,
                "type": "kafka",
                "kafka": {
                    "brokers": [kafka.brokers],
                    "topics": [kafka.topic],
                    "consumer_group": kafka.group,
                    "publication_data_mode": {"enabled": True},
                },
            }
        ]
    return document


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path
