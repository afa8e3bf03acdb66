"""Missed targets carry their cause in the results; met ones carry none."""

from __future__ import annotations

from bench.causes import CAUSES, UNKNOWN, explain
from bench.stats import at_least, at_most, verdict_lines


def test_a_missed_target_says_why_and_a_met_one_does_not() -> None:
    missed = at_most("handshake_cpu_vs_centrifugo", "handshake CPU <= 1x", 1.4, 1.0, "x")
    met = at_least("ticks_ceiling_vs_centrifugo", "ceiling >= 1x", 1.1, 1.0, "x")
    unmeasured = at_most("burst_cpu_vs_centrifugo", "burst CPU <= 0.5x", None, 0.5, "x")
    explained = explain([missed.as_dict(), met.as_dict(), unmeasured.as_dict()])
    assert explained[0]["why"] == CAUSES["handshake_cpu_vs_centrifugo"]
    assert "why" not in explained[1]
    assert "why" not in explained[2]


def test_a_missed_target_without_a_known_cause_says_so() -> None:
    missed = at_least("something_new", "x >= 1", 0.5, 1.0, "x").as_dict()
    assert explain([missed])[0]["why"] == UNKNOWN


def test_the_summary_prints_a_missed_target_with_its_cause_under_it() -> None:
    missed = at_most("handshake_cpu_vs_centrifugo", "handshake CPU <= 1x", 1.4, 1.0, "x")
    met = at_least("ticks_ceiling_vs_centrifugo", "ceiling >= 1x", 1.1, 1.0, "x")
    lines = verdict_lines(explain([missed.as_dict(), met.as_dict()]))
    assert lines == [
        "target handshake CPU <= 1x: NOT MET (0.4 x over (1.40x the limit))",
        f"  why: {CAUSES['handshake_cpu_vs_centrifugo']}",
        "target ceiling >= 1x: MET (met with 0.1 x to spare)",
    ]
