"""Results: the JSON document, the console summary, the README table and the plot."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.causes import explain
from bench.plan import Plan
from bench.runner import Outcome
from bench.servers import (
    AIOHTTP_NAIVE,
    CENTRIFUGO,
    CENTRIFUGO_HTTP,
    CENTRIFUGO_LOWMEM,
    NODE_WS,
    ROOMCAST,
    ROOMCAST_NOPRESENCE,
    ROOMCAST_REDIS,
    ROOMCAST_STAGGERED,
)
from bench.stats import Verdict, at_least, at_most, ratio, verdict_lines

PEERS = (NODE_WS, AIOHTTP_NAIVE, CENTRIFUGO, CENTRIFUGO_HTTP, CENTRIFUGO_LOWMEM)
# roomcast's variants against each other in the same run: results key -> (ours, baseline,
# what the line says); every figure is ours / baseline, as for the peers.
VARIANTS = {
    "ratio_presence_on_vs_off": (ROOMCAST, ROOMCAST_NOPRESENCE, "presence on / off"),
    "ratio_staggered_vs_uniform_expiry": (
        ROOMCAST_STAGGERED,
        ROOMCAST,
        "staggered / uniform token expiry",
    ),
    "ratio_redis_vs_kafka_bus": (ROOMCAST_REDIS, ROOMCAST, "Redis Streams / Kafka bus"),
}
# handshakes/s into one room with presence on at least this share of presence off,
# at every C (without a room, presence has nothing to do)
TARGET_PRESENCE_HANDSHAKES = 0.8
# staggered expiries leave the burst figures where uniform ones put them, within the
# run-to-run noise of one machine: CPU per delivery at most, deliveries/s at least
TARGET_STAGGERED_CPU = 1.1
TARGET_STAGGERED_RATE = 0.9
# scenario -> metrics compared as roomcast / peer
COMPARED = {
    "burst": ("cpu_us_per_delivery", "deliveries_per_s"),
    "handshake": ("handshakes_per_s", "cpu_us_per_handshake"),
    "handshake_room": ("handshakes_per_s", "cpu_us_per_handshake"),
    "idle": ("rss_per_connection_bytes",),
}
SUSTAINED_COMPARED = ("p50", "p99", "max")
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
TARGET_CPU_RATIO = 0.8
TARGET_P99_MS = 50.0
TARGET_P99_RATE = 50_000.0
TARGET_RSS_BYTES = 10 * 1024


def _metric(entry: Any, name: str) -> float | None:
    if isinstance(entry, dict):
        value = entry.get(name)
        if isinstance(value, int | float):
            return float(value)
    return None


def _sustained_point(points: Any, offered: float) -> dict[str, Any] | None:
    for point in points or ():
        if isinstance(point, dict) and point.get("offered_deliveries_per_s") == offered:
            return point
    return None


def ratios_vs(scenarios: dict[str, Any], peer: str, server: str = ROOMCAST) -> dict[str, Any]:
    """server's figure divided by the peer's, per scenario, connection count and metric."""
    out: dict[str, Any] = {}
    for scenario, metrics in COMPARED.items():
        for connections, by_server in scenarios.get(scenario, {}).items():
            ours, theirs = by_server.get(server), by_server.get(peer)
            out.setdefault(scenario, {})[connections] = {
                m: ratio(_metric(ours, m), _metric(theirs, m)) for m in metrics
            }
    for connections, by_server in scenarios.get("sustained", {}).items():
        per_rate: dict[str, Any] = {}
        for point in by_server.get(server) or ():
            offered = point["offered_deliveries_per_s"]
            theirs = _sustained_point(by_server.get(peer), offered)
            ours_latency = point.get("latency_ms")
            theirs_latency = theirs.get("latency_ms") if theirs else None
            per_rate[f"{offered:g}"] = {
                f"latency_{m}": ratio(_metric(ours_latency, m), _metric(theirs_latency, m))
                for m in SUSTAINED_COMPARED
            } | {
                "cpu_us_per_delivery": ratio(
                    _metric(point, "cpu_us_per_delivery"), _metric(theirs, "cpu_us_per_delivery")
                )
            }
        out.setdefault("sustained", {})[connections] = per_rate
    for connections, by_server in scenarios.get("ticks", {}).items():
        ticks_ratios = ticks_vs(by_server.get(server), by_server.get(peer))
        if ticks_ratios is not None:
            out.setdefault("ticks", {})[connections] = ticks_ratios
    return out


def _ticks_step(entry: Any, rate: Any) -> dict[str, Any] | None:
    for step in entry.get("steps", ()) if isinstance(entry, dict) else ():
        if isinstance(step, dict) and step.get("rate") == rate:
            return step
    return None


def ticks_vs(ours: Any, theirs: Any) -> dict[str, Any] | None:
    """roomcast / peer for the `ticks` ladder: the ceiling, and each step both ran."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return None
    steps: dict[str, Any] = {}
    for step in ours.get("steps", ()):
        other = _ticks_step(theirs, step.get("rate"))
        if other is None:
            continue
        steps[f"{step['rate']:g}"] = {
            f"latency_{m}": ratio(
                _metric(step.get("latency_ms"), m), _metric(other.get("latency_ms"), m)
            )
            for m in SUSTAINED_COMPARED
        } | {
            m: ratio(_metric(step, m), _metric(other, m))
            for m in ("cpu_us_per_message", "cpu_us_per_delivery", "delivered_per_s")
        }
    return {
        "ingest_ceiling": ratio(
            _metric(ours.get("ceiling"), "messages_per_s"),
            _metric(theirs.get("ceiling"), "messages_per_s"),
        ),
        "steps": steps,
    }


def _lost(scenarios: dict[str, Any]) -> tuple[int | None, int]:
    """Deliveries roomcast lost or duplicated, and failed connections, over the whole run."""
    lost, failed, seen = 0, 0, False
    for scenario in ("burst", "sustained"):
        for by_server in scenarios.get(scenario, {}).values():
            entries = by_server.get(ROOMCAST)
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    seen = True
                    lost += int(entry.get("lost", 0)) + int(entry.get("duplicated", 0))
    for by_server in scenarios.get("handshake", {}).values():
        entry = by_server.get(ROOMCAST)
        if isinstance(entry, dict):
            failed += int(entry.get("failed", 0))
    return (lost if seen else None), failed


def targets(scenarios: dict[str, Any], plan: Plan) -> list[Verdict]:
    top = str(max(plan.connections))
    burst = scenarios.get("burst", {}).get(top, {})
    cpu_ratio = ratio(
        _metric(burst.get(ROOMCAST), "cpu_us_per_delivery"),
        _metric(burst.get(NODE_WS), "cpu_us_per_delivery"),
    )
    sustained = scenarios.get("sustained", {}).get(str(plan.sustained_connections), {})
    point = _sustained_point(sustained.get(ROOMCAST), TARGET_P99_RATE)
    p99 = _metric(point.get("latency_ms") if point else None, "p99")
    rss = _metric(scenarios.get("idle", {}).get(top, {}).get(ROOMCAST), "rss_per_connection_bytes")
    lost, failed = _lost(scenarios)
    nothing_lost = at_most(
        "nothing_lost",
        "no delivery lost or duplicated, no connection refused",
        None if lost is None else float(lost + failed),
        0.0,
        "deliveries/connections",
    )
    return [
        at_most(
            "cpu_per_delivery_vs_node_ws",
            f"burst CPU per delivery <= {TARGET_CPU_RATIO}x Node ws at C={top}",
            cpu_ratio,
            TARGET_CPU_RATIO,
            "x",
        ),
        at_most(
            "p99_at_50k_deliveries_per_s",
            f"sustained p99 <= {TARGET_P99_MS:g} ms at {TARGET_P99_RATE:g} deliveries/s "
            f"(C={plan.sustained_connections})",
            p99,
            TARGET_P99_MS,
            "ms",
        ),
        at_most(
            "rss_per_idle_connection",
            f"RSS per idle connection <= {TARGET_RSS_BYTES} bytes at C={top}",
            rss,
            TARGET_RSS_BYTES,
            "bytes",
        ),
        nothing_lost,
    ]


# Against Centrifugo fed by its Kafka consumer (and its low-memory settings for memory).
TARGET_VS_CENTRIFUGO = {
    "handshake_cpu": 1.0,
    "burst_rate": 1.0,
    "burst_cpu": 0.5,
    "idle_rss_vs_lowmem": 0.25,
    "ticks_ceiling": 1.0,
    "ticks_p99": 1.0,
}


def _worst(values: list[float | None], highest: bool) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return max(known) if highest else min(known)


def centrifugo_targets(results: dict[str, Any], plan: Plan) -> list[Verdict]:
    """The targets against Centrifugo, each at its worst connection count or ticks step."""
    vs = results.get(f"ratio_vs_{CENTRIFUGO}", {})
    vs_lowmem = results.get(f"ratio_vs_{CENTRIFUGO_LOWMEM}", {})
    limits = TARGET_VS_CENTRIFUGO
    top = str(max(plan.connections))

    def per_c(ratios: dict[str, Any], scenario: str, metric: str) -> list[float | None]:
        return [entry.get(metric) for entry in ratios.get(scenario, {}).values()]

    ticks = next(iter(vs.get("ticks", {}).values()), None) or {}
    step_p99 = [step.get("latency_p99") for step in (ticks.get("steps") or {}).values()]
    lowmem_rss = vs_lowmem.get("idle", {}).get(top, {}).get("rss_per_connection_bytes")
    return [
        at_most(
            "handshake_cpu_vs_centrifugo",
            f"handshake CPU <= {limits['handshake_cpu']:g}x Centrifugo at every C",
            _worst(per_c(vs, "handshake", "cpu_us_per_handshake"), highest=True),
            limits["handshake_cpu"],
            "x",
        ),
        at_least(
            "burst_rate_vs_centrifugo",
            f"burst deliveries/s >= {limits['burst_rate']:g}x Centrifugo at every C",
            _worst(per_c(vs, "burst", "deliveries_per_s"), highest=False),
            limits["burst_rate"],
            "x",
        ),
        at_most(
            "burst_cpu_vs_centrifugo",
            f"burst CPU per delivery <= {limits['burst_cpu']:g}x Centrifugo at every C",
            _worst(per_c(vs, "burst", "cpu_us_per_delivery"), highest=True),
            limits["burst_cpu"],
            "x",
        ),
        at_most(
            "idle_rss_vs_centrifugo_lowmem",
            f"RSS per idle connection <= {limits['idle_rss_vs_lowmem']:g}x Centrifugo's"
            f" low-memory settings at C={top}",
            lowmem_rss,
            limits["idle_rss_vs_lowmem"],
            "x",
        ),
        at_least(
            "ticks_ceiling_vs_centrifugo",
            f"ticks ingest ceiling >= {limits['ticks_ceiling']:g}x Centrifugo",
            ticks.get("ingest_ceiling"),
            limits["ticks_ceiling"],
            "x",
        ),
        at_most(
            "ticks_p99_vs_centrifugo",
            f"ticks p99 <= {limits['ticks_p99']:g}x Centrifugo at every step both ran",
            _worst(step_p99, highest=True),
            limits["ticks_p99"],
            "x",
        ),
    ]


def _measured_only(ratios: dict[str, Any]) -> dict[str, Any]:
    """Without the sustained points neither side ran (burst-only variants have none)."""
    sustained = {
        c: {rate: r for rate, r in points.items() if any(v is not None for v in r.values())}
        for c, points in ratios.get("sustained", {}).items()
    }
    sustained = {c: points for c, points in sustained.items() if points}
    out = {k: v for k, v in ratios.items() if k != "sustained"}
    if sustained:
        out["sustained"] = sustained
    return out


def variant_targets(results: dict[str, Any]) -> list[Verdict]:
    """Presence and token-expiry targets, for the variants this run measured."""
    verdicts = []
    servers = results.get("servers", [])
    presence = results.get("ratio_presence_on_vs_off", {})
    if ROOMCAST in servers and ROOMCAST_NOPRESENCE in servers:
        storms = presence.get("handshake_room", {}).values()
        handshakes = [e.get("handshakes_per_s") for e in storms]
        verdicts.append(
            at_least(
                "presence_handshakes_vs_off",
                f"handshakes/s into one room with presence on >= "
                f"{TARGET_PRESENCE_HANDSHAKES:g}x off at every C",
                _worst(handshakes, highest=False),
                TARGET_PRESENCE_HANDSHAKES,
                "x",
            )
        )
    expiry = results.get("ratio_staggered_vs_uniform_expiry", {}).get("burst", {})
    if ROOMCAST in servers and ROOMCAST_STAGGERED in servers:
        # at the most connections the run had: that is what the check is about
        known = [c for c, e in expiry.items() if e.get("cpu_us_per_delivery") is not None]
        top = expiry.get(max(known, key=int), {}) if known else {}
        verdicts.append(
            at_most(
                "staggered_expiry_burst_cpu",
                f"burst CPU per delivery, staggered / uniform token expiry <= "
                f"{TARGET_STAGGERED_CPU:g}x at the most connections",
                top.get("cpu_us_per_delivery"),
                TARGET_STAGGERED_CPU,
                "x",
            )
        )
        verdicts.append(
            at_least(
                "staggered_expiry_burst_rate",
                f"burst deliveries/s, staggered / uniform token expiry >= "
                f"{TARGET_STAGGERED_RATE:g}x at the most connections",
                top.get("deliveries_per_s"),
                TARGET_STAGGERED_RATE,
                "x",
            )
        )
    return verdicts


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def build(
    plan: Plan, servers: list[str], outcome: Outcome, machine: dict[str, Any]
) -> dict[str, Any]:
    scenarios = outcome.scenarios
    results: dict[str, Any] = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "plan": {
            "name": plan.name,
            "connections": list(plan.connections),
            "burst_messages": {str(k): v for k, v in plan.burst_messages.items()},
            "sustained_connections": plan.sustained_connections,
            "sustained_rates": list(plan.sustained_rates),
            "sustained_seconds": plan.sustained_seconds,
            "load_workers": plan.workers,
        },
        "machine": machine,
        "servers": servers,
        "feeds": outcome.feeds,
        "scenarios": scenarios,
        "ratio_vs_node_ws": ratios_vs(scenarios, NODE_WS),
        "ratio_vs_aiohttp_naive": ratios_vs(scenarios, AIOHTTP_NAIVE),
        "ratio_vs_centrifugo": ratios_vs(scenarios, CENTRIFUGO),
        "ratio_vs_centrifugo_http": ratios_vs(scenarios, CENTRIFUGO_HTTP),
        "ratio_vs_centrifugo_lowmem": ratios_vs(scenarios, CENTRIFUGO_LOWMEM),
        **{
            key: _measured_only(ratios_vs(scenarios, baseline, ours))
            for key, (ours, baseline, _) in VARIANTS.items()
        },
        "publisher": outcome.publisher,
        "targets": [v.as_dict() for v in targets(scenarios, plan)],
        "errors": outcome.errors,
        "notes": outcome.notes,
    }
    if plan.ticks is not None:
        results["plan"]["ticks"] = plan.ticks.as_dict()
    if plan.expiry_connections:
        results["plan"]["expiry_connections"] = list(plan.expiry_connections)
    results["targets"].extend(v.as_dict() for v in centrifugo_targets(results, plan))
    results["targets"].extend(v.as_dict() for v in variant_targets(results))
    results["targets"] = explain(results["targets"])
    return results


# ---- console -----------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _with_ratios(results: dict[str, Any], scenario: str, connections: str, metric: str) -> str:
    parts = []
    for peer in PEERS:
        r = results[f"ratio_vs_{peer}"].get(scenario, {}).get(connections, {}).get(metric)
        parts.append(f"{r:.2f}x {peer}" if r is not None else f"- {peer}")
    return "(" + ", ".join(parts) + ")"


def summary_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    scenarios = results["scenarios"]
    for scenario, metrics in COMPARED.items():
        for connections, by_server in scenarios.get(scenario, {}).items():
            for metric in metrics:
                values = "  ".join(
                    f"{server}={_fmt(_metric(by_server.get(server), metric))}"
                    for server in results["servers"]
                )
                lines.append(f"{scenario:9} C={connections:>6} {metric:26} {values}")
                if ROOMCAST in by_server:
                    lines.append(
                        " " * 45
                        + "roomcast "
                        + _with_ratios(results, scenario, connections, metric)
                    )
    for connections, by_server in scenarios.get("sustained", {}).items():
        for server in results["servers"]:
            for point in by_server.get(server) or ():
                latency = point.get("latency_ms") or {}
                lines.append(
                    f"sustained C={connections:>6} {server:14} "
                    f"{point['offered_deliveries_per_s']:>9,.0f}/s  p50 {_fmt(latency.get('p50'))} "
                    f"p99 {_fmt(latency.get('p99'))} max {_fmt(latency.get('max'))} ms  "
                    f"lost {point['lost']}  cpu {_fmt(point.get('cpu_us_per_delivery'))} us"
                )
    lines.extend(ticks_lines(results))
    lines.extend(variant_lines(results))
    if results.get("publisher"):
        pub = results["publisher"]
        lines.append(
            f"publisher single {_fmt(pub['single']['acked_per_s'])} acked/s, "
            f"batched {_fmt(pub['batched']['acked_per_s'])} acked/s"
        )
    lines.extend(verdict_lines(results["targets"]))
    for key, error in results["errors"].items():
        lines.append(f"error {key}: {error.splitlines()[0]}")
    return lines


# what a variant line shows: (scenario, metric, label)
VARIANT_FIGURES = (
    ("handshake", "handshakes_per_s", "handshakes/s"),
    ("handshake", "cpu_us_per_handshake", "CPU/handshake"),
    ("handshake_room", "handshakes_per_s", "handshakes/s into a room"),
    ("handshake_room", "cpu_us_per_handshake", "CPU/handshake into a room"),
    ("idle", "rss_per_connection_bytes", "RSS/idle conn"),
    ("burst", "deliveries_per_s", "burst deliveries/s"),
    ("burst", "cpu_us_per_delivery", "burst CPU/delivery"),
)


def _ratio_text(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "-"


def variant_rows(results: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(what, C, ratio texts in VARIANT_FIGURES order, then the ticks ceiling) per C."""
    rows = []
    for key, (ours, baseline, label) in VARIANTS.items():
        if ours not in results["servers"] or baseline not in results["servers"]:
            continue
        ratios = results.get(key, {})
        counts = sorted(
            {c for scenario, _, _ in VARIANT_FIGURES for c in ratios.get(scenario, {})}
            | set(ratios.get("ticks", {})),
            key=int,
        )
        for c in counts:
            texts = [
                _ratio_text(ratios.get(scenario, {}).get(c, {}).get(metric))
                for scenario, metric, _ in VARIANT_FIGURES
            ]
            texts.append(_ratio_text(ratios.get("ticks", {}).get(c, {}).get("ingest_ceiling")))
            # a count only the other servers ran (the expiry step, for presence and Redis)
            if any(text != "-" for text in texts):
                rows.append((label, c, texts))
    return rows


def variant_lines(results: dict[str, Any]) -> list[str]:
    labels = [label for _, _, label in VARIANT_FIGURES] + ["ticks ceiling"]
    return [
        f"variant {what} C={c}: "
        + ", ".join(f"{label} {text}" for label, text in zip(labels, texts, strict=True))
        for what, c, texts in variant_rows(results)
    ]


def variant_table(results: dict[str, Any]) -> list[str]:
    rows = variant_rows(results)
    if not rows:
        return []
    labels = [label for _, _, label in VARIANT_FIGURES] + ["ticks ceiling"]
    out = [
        "",
        "| roomcast variant (ratio) | C | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    out.extend(f"| {what} | {c} | " + " | ".join(texts) + " |" for what, c, texts in rows)
    return out


def ticks_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for connections, by_server in results["scenarios"].get("ticks", {}).items():
        for server in results["servers"]:
            entry = by_server.get(server)
            if not isinstance(entry, dict):
                continue
            for step in entry.get("steps", ()):
                latency = step.get("latency_ms") or {}
                lines.append(
                    f"ticks C={connections:>6} {server:18} {step['rate']:>7,.0f} msg/s "
                    f"offered {_fmt(step.get('offered_per_s'))} "
                    f"delivered {_fmt(step.get('delivered_per_s'))}/s  "
                    f"p50 {_fmt(latency.get('p50'))} p99 {_fmt(latency.get('p99'))} "
                    f"max {_fmt(latency.get('max'))} ms  lost {step.get('lost')} "
                    f"dup {step.get('duplicated')}  cpu {_fmt(step.get('cpu_us_per_message'))} "
                    f"us/msg {_fmt(step.get('cpu_us_per_delivery'))} us/delivery"
                )
            ceiling = entry.get("ceiling") or {}
            lines.append(
                f"ticks C={connections:>6} {server:18} ingest ceiling "
                f"{_fmt(ceiling.get('messages_per_s'))} msg/s ({ceiling.get('stopped')})"
            )
    return lines


def print_summary(results: dict[str, Any]) -> None:
    print("\n".join(summary_lines(results)))


# ---- README table ----------------------------------------------------------------


def readme_table(results: dict[str, Any]) -> str:
    """A markdown table of the headline figures per connection count and server."""
    scenarios = results["scenarios"]
    rows = [
        "| C | server | burst deliveries/s | CPU µs/delivery | RSS/idle conn | handshakes/s |"
        " CPU µs/handshake | lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    expiry = [str(c) for c in results["plan"].get("expiry_connections", [])]
    for connections in [str(c) for c in results["plan"]["connections"]] + expiry:
        for server in results["servers"]:
            # the expiry step runs two servers only
            measured = scenarios.get("handshake", {}).get(connections, {})
            if connections in expiry and server not in measured:
                continue
            burst = scenarios.get("burst", {}).get(connections, {}).get(server)
            idle = scenarios.get("idle", {}).get(connections, {}).get(server)
            hs = scenarios.get("handshake", {}).get(connections, {}).get(server)
            rss = _metric(idle, "rss_per_connection_bytes")
            rows.append(
                f"| {connections} | {server} | {_fmt(_metric(burst, 'deliveries_per_s'))} | "
                f"{_fmt(_metric(burst, 'cpu_us_per_delivery'))} | "
                f"{'-' if rss is None else f'{rss / 1024:.1f} KB'} | "
                f"{_fmt(_metric(hs, 'handshakes_per_s'))} | "
                f"{_fmt(_metric(hs, 'cpu_us_per_handshake'))} | "
                f"{'-' if burst is None else burst.get('lost')} |"
            )
    rows.append("")
    rows.append("| sustained | server | offered deliveries/s | p50 ms | p99 ms | max ms | lost |")
    rows.append("|---|---|---|---|---|---|---|")
    for connections, by_server in scenarios.get("sustained", {}).items():
        for server in results["servers"]:
            for point in by_server.get(server) or ():
                latency = point.get("latency_ms") or {}
                rows.append(
                    f"| C={connections} | {server} | {point['offered_deliveries_per_s']:,.0f} | "
                    f"{_fmt(latency.get('p50'))} | {_fmt(latency.get('p99'))} | "
                    f"{_fmt(latency.get('max'))} | {point['lost']} |"
                )
    rows.extend(ticks_table(results))
    rows.extend(variant_table(results))
    rows.append("")
    rows.append("| target | result | measured | gap |")
    rows.append("|---|---|---|---|")
    for verdict in results["targets"]:
        state = {True: "met", False: "**not met**", None: "not measured"}[verdict["met"]]
        rows.append(
            f"| {verdict['target']} | {state} | {_fmt(verdict['measured'])} | {verdict['gap']} |"
        )
    meta = results["machine"]
    rows.append("")
    rows.append(
        f"Run `{results['plan']['name']}` at commit {results['commit']} on {results['generated_at']}:"
        f" {meta['cpus']} cores, server on {meta['server_cores']}, load on {meta['load_cores']},"
        f" Python {meta['python']}, Node {meta['node']}; roomcast fed through"
        f" {results['feeds'].get(ROOMCAST, '-')}"
        + (
            f"; load average {meta['load_average_1m']:g} at the end"
            if isinstance(meta.get("load_average_1m"), int | float)
            else ""
        )
        + "."
    )
    return "\n".join(rows)


def ticks_table(results: dict[str, Any]) -> list[str]:
    """The `ticks` ladder of every server, one row per step, then the ceilings."""
    rows: list[str] = []
    for connections, by_server in results["scenarios"].get("ticks", {}).items():
        rows.append("")
        rows.append(
            f"| ticks C={connections} | server | offered msg/s | delivered/s | p50 ms |"
            " p99 ms | max ms | CPU µs/msg | CPU µs/delivery | lost | dup |"
        )
        rows.append("|---|---|---|---|---|---|---|---|---|---|---|")
        ceilings = []
        for server in results["servers"]:
            entry = by_server.get(server)
            if not isinstance(entry, dict):
                continue
            for step in entry.get("steps", ()):
                latency = step.get("latency_ms") or {}
                rows.append(
                    f"| {step['rate']:,.0f} | {server} | {_fmt(step.get('offered_per_s'))} | "
                    f"{_fmt(step.get('delivered_per_s'))} | {_fmt(latency.get('p50'))} | "
                    f"{_fmt(latency.get('p99'))} | {_fmt(latency.get('max'))} | "
                    f"{_fmt(step.get('cpu_us_per_message'))} | "
                    f"{_fmt(step.get('cpu_us_per_delivery'))} | {step.get('lost')} | "
                    f"{step.get('duplicated')} |"
                )
            ceiling = entry.get("ceiling") or {}
            ceilings.append(
                f"{server} {_fmt(ceiling.get('messages_per_s'))} msg/s ({ceiling.get('stopped')})"
            )
        rows.append("")
        rows.append("Ingest ceilings: " + "; ".join(ceilings) + ".")
    return rows


def update_readme(readme: Path, table: str) -> bool:
    """Replace the text between the README's result markers; False when they are missing."""
    if not readme.exists():
        return False
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{table}\n{README_END}", text))
    return True


# ---- plot -----------------------------------------------------------------------


COLOURS = {
    ROOMCAST: "tab:blue",
    ROOMCAST_REDIS: "tab:cyan",
    NODE_WS: "tab:green",
    AIOHTTP_NAIVE: "tab:red",
    CENTRIFUGO: "tab:purple",
    CENTRIFUGO_HTTP: "tab:orange",
    CENTRIFUGO_LOWMEM: "tab:brown",
}
STYLES = {"p50": ("-", "o"), "p99": ("--", "s"), "max": (":", "^")}


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency percentiles vs rate, one colour per server: sustained, and `ticks` beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sustained = results["scenarios"].get("sustained", {})
    ticks = results["scenarios"].get("ticks", {})
    if not sustained and not ticks:
        return False
    panels = int(bool(sustained)) + int(bool(ticks))
    figure, axes_list = plt.subplots(1, panels, figsize=(9 * panels, 5.5), dpi=110, squeeze=False)
    axes_iter = iter(axes_list[0])
    if sustained:
        axes = next(axes_iter)
        connections, by_server = next(iter(sustained.items()))
        for server in results["servers"]:
            points = [p for p in by_server.get(server) or () if p.get("latency_ms")]
            _lines(axes, server, [p["offered_deliveries_per_s"] for p in points], points)
        axes.axhline(TARGET_P99_MS, color="black", linewidth=0.8, alpha=0.5)
        axes.annotate(
            f"p99 target {TARGET_P99_MS:g} ms",
            (axes.get_xlim()[0], TARGET_P99_MS),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
        axes.set_xlabel("offered deliveries per second (messages/s x connections)")
        axes.set_title(
            f"Sustained: latency vs rate, C={connections}, server on one core "
            f"({results['plan']['name']} run)"
        )
        _finish(axes)
    if ticks:
        axes = next(axes_iter)
        connections, by_server = next(iter(ticks.items()))
        for server in results["servers"]:
            entry = by_server.get(server)
            steps = entry.get("steps", []) if isinstance(entry, dict) else []
            points = [p for p in steps if p.get("latency_ms")]
            _lines(axes, server, [p["offered_per_s"] or p["rate"] for p in points], points)
        axes.set_xlabel("offered messages per second (spread over every topic:type pair)")
        axes.set_title(
            f"ticks: latency vs ingest rate, C={connections}, server on one core "
            f"({results['plan']['name']} run)"
        )
        _finish(axes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def _lines(axes: Any, server: str, rates: list[float], points: list[dict[str, Any]]) -> None:
    if not points:
        return
    for name, (line, marker) in STYLES.items():
        axes.plot(
            rates,
            [max(p["latency_ms"][name], 0.1) for p in points],
            linestyle=line,
            marker=marker,
            color=COLOURS.get(server, "tab:gray"),
            label=f"{server} {name}",
        )


def _finish(axes: Any) -> None:
    axes.set_yscale("log")
    axes.set_ylabel("publish-to-deliver latency, ms (log)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=3, loc="upper left")


def _kept_sections(path: Path, results: dict[str, Any]) -> dict[str, Any]:
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(previous, dict):
        return {}
    return {k: v for k, v in previous.items() if k.endswith("_anchors") and k not in results}


def write_outputs(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """latest.json, latency.png and the README table for a full run; <plan>.* otherwise."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = results["plan"]["name"] == "full"
    stem = "latest" if full else results["plan"]["name"]
    written = [out_dir / f"{stem}.json"]
    # Other benchmarks (the publisher's anchors) merge their sections into the same
    # file: a fan-out run replaces only what it measures.
    document = {**_kept_sections(written[0], results), **results}
    written[0].write_text(json.dumps(document, indent=2) + "\n")
    png = out_dir / ("latency.png" if full else f"{stem}-latency.png")
    if plot(results, png):
        written.append(png)
    readme = out_dir.parent / "README.md"
    if full and update_readme(readme, readme_table(results)):
        written.append(readme)
    return written
