"""/health, /livez, /readyz and /metrics: the operational endpoints every service mounts.

A worker among several (roomcast_core.workers) answers /metrics and /readyz for all
of them: it asks each sibling on its Unix socket (`?scope=worker`: that one alone)
and sums the metrics, or lists every worker's reasons not to be ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from roomcast_core.jsonutil import json_response
from roomcast_core.workers import WorkerPlace, this_worker

# Seconds a sibling has to answer; one that does not is reported, not waited for.
SIBLING_TIMEOUT = 2.0

# A readiness check answers None when its dependency is usable, else the reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass
class Health:
    """Readiness state of one service: named checks plus the draining flag."""

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    draining: bool = False
    check_timeout: float = 2.0

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def reasons(self) -> list[str]:
        if self.draining:
            return ["draining"]
        names = list(self.checks)
        results = await asyncio.gather(
            *(self._run(name) for name in names), return_exceptions=False
        )
        return [reason for reason in results if reason is not None]

    async def _run(self, name: str) -> str | None:
        try:
            async with asyncio.timeout(self.check_timeout):
                reason = await self.checks[name]()
        except TimeoutError:
            return f"{name}: check timed out"
        except Exception as exc:  # a failing probe must report, not raise
            return f"{name}: {type(exc).__name__}: {exc}"
        return None if reason is None else f"{name}: {reason}"


HEALTH_KEY = web.AppKey("roomcast_health", Health)
METRICS_KEY = web.AppKey("roomcast_metrics_registry", CollectorRegistry)


async def _health(_: web.Request) -> web.Response:
    return json_response({"status": "healthy"})


async def _livez(_: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    reasons = await request.app[HEALTH_KEY].reasons()
    place = _answering_for_all(request)
    if place is not None:
        reasons = [f"worker {place.index}: {r}" for r in reasons]
        answers = await asyncio.gather(*(_ask(p, "/readyz") for p in place.siblings()))
        for path, answer in zip(place.siblings(), answers, strict=True):
            name = path.stem.replace("-", " ")
            if answer is None:
                reasons.append(f"{name}: not running")
            elif answer[0] != 200:
                reasons.append(f"{name}: {answer[1]}")
    if reasons:
        return json_response({"status": "not ready", "reasons": reasons}, status=503)
    return json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY])
    place = _answering_for_all(request)
    if place is not None:
        answers = await asyncio.gather(*(_ask(p, "/metrics") for p in place.siblings()))
        texts = [body.decode()] + [a[1] for a in answers if a is not None and a[0] == 200]
        body = merge_metrics(texts).encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _answering_for_all(request: web.Request) -> WorkerPlace | None:
    """This worker's place when it answers for its siblings too, else None."""
    if request.query.get("scope") == "worker":
        return None
    return this_worker()


async def _ask(socket: Path, path: str) -> tuple[int, str] | None:
    """A sibling's answer on its Unix socket, or None when it does not answer."""
    timeout = aiohttp.ClientTimeout(total=SIBLING_TIMEOUT)
    with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
        connector = aiohttp.UnixConnector(path=str(socket))
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(f"http://worker{path}?scope=worker") as reply,
        ):
            return reply.status, await reply.text()
    return None


def merge_metrics(texts: list[str]) -> str:
    """Prometheus text of several processes as one: each sample summed by name and
    labels (a `_created` timestamp takes the earliest), each family's lines together."""
    meta: dict[str, list[str]] = {}  # family -> its HELP and TYPE lines
    families: dict[str, dict[str, float]] = {}  # family -> sample -> value
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    lines = meta.setdefault(family, [])
                    families.setdefault(family, {})
                    if line not in lines and len(lines) < 2:
                        lines.append(line)
                continue
            key, _, raw = line.rpartition(" ")
            try:
                value = float(raw)
            except ValueError:
                continue
            samples = families.setdefault(family, {})
            if key not in samples:
                samples[key] = value
            elif key.partition("{")[0].endswith("_created"):
                samples[key] = min(samples[key], value)
            else:
                samples[key] += value
    out: list[str] = []
    for family, samples in families.items():
        out.extend(meta.get(family, []))
        out.extend(f"{key} {_number(value)}" for key, value in samples.items())
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return str(int(value)) + ".0" if value.is_integer() and abs(value) < 1e15 else repr(value)


def mount_health(app: web.Application, health: Health, registry: CollectorRegistry) -> None:
    """Store the health state and metrics registry on the app and add the four routes."""
    app[HEALTH_KEY] = health
    app[METRICS_KEY] = registry
    app.router.add_get("/health", _health)
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
