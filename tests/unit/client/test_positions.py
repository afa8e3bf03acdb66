from __future__ import annotations

import pytest

from roomcast_client.positions import PositionVector
from roomcast_client.stats import LatencyStats


def test_vector_keeps_the_last_offset_per_partition() -> None:
    vector = PositionVector()
    vector.merge_start("0:41,1:-1,2:17")
    vector.advance("1:5")
    vector.advance("0:42")
    vector.advance("0:40")  # an older position never moves the vector back
    assert str(vector) == "0:42,1:5,2:17"


def test_start_positions_do_not_overwrite_seen_ones() -> None:
    vector = PositionVector.parse("0:100")
    vector.merge_start("0:120,1:3")
    assert str(vector) == "0:100,1:3"


@pytest.mark.parametrize("text", ["x:1", "0:y", "0"])
def test_bad_vectors_raise(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - int() says which part
        PositionVector.parse(text)


def test_percentiles() -> None:
    stats = LatencyStats()
    for value in range(1, 101):
        stats.add(value / 1000)
    assert stats.percentile(50) == pytest.approx(0.050)
    assert stats.percentile(99) == pytest.approx(0.099)
    assert stats.percentile(100) == pytest.approx(0.100)
    assert LatencyStats().percentile(99) == 0.0
