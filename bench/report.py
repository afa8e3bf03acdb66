"""Results: the JSON document, the console summary, the README table and the plot."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.plan import Plan
from bench.runner import Outcome
from bench.servers import AIOHTTP_NAIVE, NODE_WS, ROOMCAST
from bench.stats import Verdict, at_most, ratio

PEERS = (NODE_WS, AIOHTTP_NAIVE)
# scenario -> metrics compared as roomcast / peer
COMPARED = {
    "burst": ("cpu_us_per_delivery", "deliveries_per_s"),
    "handshake": ("handshakes_per_s", "cpu_us_per_handshake"),
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


def ratios_vs(scenarios: dict[str, Any], peer: str) -> dict[str, Any]:
    """roomcast's figure divided by the peer's, per scenario, connection count and metric."""
    out: dict[str, Any] = {}
    for scenario, metrics in COMPARED.items():
        for connections, by_server in scenarios.get(scenario, {}).items():
            ours, theirs = by_server.get(ROOMCAST), by_server.get(peer)
            out.setdefault(scenario, {})[connections] = {
                m: ratio(_metric(ours, m), _metric(theirs, m)) for m in metrics
            }
    for connections, by_server in scenarios.get("sustained", {}).items():
        per_rate: dict[str, Any] = {}
        for point in by_server.get(ROOMCAST) or ():
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
    return out


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
    return {
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
        "publisher": outcome.publisher,
        "targets": [v.as_dict() for v in targets(scenarios, plan)],
        "errors": outcome.errors,
        "notes": outcome.notes,
    }


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
    if results.get("publisher"):
        pub = results["publisher"]
        lines.append(
            f"publisher single {_fmt(pub['single']['acked_per_s'])} acked/s, "
            f"batched {_fmt(pub['batched']['acked_per_s'])} acked/s"
        )
    for verdict in results["targets"]:
        state = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[verdict["met"]]
        lines.append(f"target {verdict['target']}: {state} ({verdict['gap']})")
    for key, error in results["errors"].items():
        lines.append(f"error {key}: {error.splitlines()[0]}")
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
    for connections in (str(c) for c in results["plan"]["connections"]):
        for server in results["servers"]:
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
        f" {results['feeds'].get(ROOMCAST, '-')}."
    )
    return "\n".join(rows)


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


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency percentiles vs offered deliveries/s, one colour per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sustained = results["scenarios"].get("sustained", {})
    if not sustained:
        return False
    connections, by_server = next(iter(sustained.items()))
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    colours = {ROOMCAST: "tab:blue", NODE_WS: "tab:green", AIOHTTP_NAIVE: "tab:red"}
    styles = {"p50": ("-", "o"), "p99": ("--", "s"), "max": (":", "^")}
    for server in results["servers"]:
        points = [p for p in by_server.get(server) or () if p.get("latency_ms")]
        if not points:
            continue
        rates = [p["offered_deliveries_per_s"] for p in points]
        for name, (line, marker) in styles.items():
            axes.plot(
                rates,
                [max(p["latency_ms"][name], 0.1) for p in points],
                linestyle=line,
                marker=marker,
                color=colours.get(server, "tab:gray"),
                label=f"{server} {name}",
            )
    axes.axhline(TARGET_P99_MS, color="black", linewidth=0.8, alpha=0.5)
    axes.annotate(
        f"p99 target {TARGET_P99_MS:g} ms",
        (axes.get_xlim()[0], TARGET_P99_MS),
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=8,
    )
    axes.set_yscale("log")
    axes.set_xlabel("offered deliveries per second (messages/s x connections)")
    axes.set_ylabel("publish-to-deliver latency, ms (log)")
    axes.set_title(
        f"Latency vs rate, C={connections} connections, server on one core "
        f"({results['plan']['name']} run)"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncol=3, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def write_outputs(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """latest.json, latency.png and the README table for a full run; <plan>.* otherwise."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = results["plan"]["name"] == "full"
    stem = "latest" if full else results["plan"]["name"]
    written = [out_dir / f"{stem}.json"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    png = out_dir / ("latency.png" if full else f"{stem}-latency.png")
    if plot(results, png):
        written.append(png)
    readme = out_dir.parent / "README.md"
    if full and update_readme(readme, readme_table(results)):
        written.append(readme)
    return written
