"""The fault schedule: replayable by its seed, overlapping only where it may."""

from __future__ import annotations

from tests.chaos.schedule import EDGE_DOWN, EXCLUSIVE, QUIET_TAIL, WARM_UP, plan


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert plan(7, 600) == plan(7, 600)
    assert plan(7, 600) != plan(8, 600)


def test_faults_stay_inside_the_window_and_never_take_two_edges_or_two_shared_parts() -> None:
    for seed in range(50):
        faults = plan(seed, 600)
        assert len(faults) >= 40, seed  # eight a minute, a few dropped as collisions
        for fault in faults:
            assert fault.at >= WARM_UP, fault
            assert fault.until <= 600 - QUIET_TAIL, fault
        for i, a in enumerate(faults):
            for b in faults[i + 1 :]:
                if a.at < b.until and b.at < a.until:
                    assert not (a.kind in EXCLUSIVE and b.kind in EXCLUSIVE), (a, b)
                    assert not (a.kind in EDGE_DOWN and b.kind in EDGE_DOWN), (a, b)


def test_a_short_lane_still_gets_faults_and_a_lane_too_short_gets_none() -> None:
    assert 1 <= len(plan(1, 90)) <= 12
    assert plan(1, QUIET_TAIL + WARM_UP) == []
