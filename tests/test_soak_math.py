"""The soak benchmark's arithmetic (benchmarks/soak.py): the slope of the memory samples after
the warm-up, the flat / not-flat decision, and the per-process figures. No servers."""

from __future__ import annotations

import pytest

from benchmarks.soak import FLAT_MB_PER_10_MIN, is_flat, latency_windows, memory_summary, slope_per_10_min


def line(mb_per_minute: float, start: float = 100.0, minutes: int = 20) -> list[tuple[float, float]]:
    """Samples every 30 s of a process growing ``mb_per_minute``."""
    return [(t * 30.0, start + mb_per_minute * t / 2) for t in range(minutes * 2 + 1)]


@pytest.mark.parametrize(("samples", "expected"), [
    (line(0.0), 0.0),
    (line(1.0), 10.0),  # 1 MB a minute is 10 MB per 10 minutes
    (line(-0.25), -2.5),
    ([(0.0, 100.0), (600.0, 103.0)], 3.0),
    ([(0.0, 100.0), (300.0, 110.0), (600.0, 100.0)], 0.0),  # a bump that goes away is not growth
])
def test_slope_per_10_min(samples: list[tuple[float, float]], expected: float) -> None:
    assert slope_per_10_min(samples) == pytest.approx(expected)


@pytest.mark.parametrize("samples", [[], [(30.0, 100.0)], [(30.0, 100.0), (30.0, 120.0)]])
def test_no_slope_without_two_distinct_times(samples: list[tuple[float, float]]) -> None:
    assert slope_per_10_min(samples) is None


@pytest.mark.parametrize(("slope", "flat"), [
    (0.0, True), (-3.0, True), (FLAT_MB_PER_10_MIN - 0.01, True),
    (FLAT_MB_PER_10_MIN, False), (12.0, False), (None, None),
])
def test_is_flat(slope: float | None, flat: bool | None) -> None:
    assert is_flat(slope) is flat


def test_memory_summary_measures_growth_after_the_warm_up_only() -> None:
    # Fast growth in the first 2 minutes (loading), then flat.
    samples = [(0.0, 50.0), (60.0, 200.0), (120.0, 300.0), (180.0, 300.5), (240.0, 300.0), (300.0, 300.5)]
    summary = memory_summary(samples, warmup=120.0)
    assert summary["warmup_end_mb"] == 300.0
    assert summary["end_mb"] == 300.5
    assert summary["max_mb"] == 300.5
    assert summary["samples_after_warmup"] == 4
    assert summary["flat"] is True


def test_memory_summary_leak_is_not_flat() -> None:
    summary = memory_summary(line(1.0), warmup=120.0)
    assert summary["slope_mb_per_10_min"] == pytest.approx(10.0)
    assert summary["flat"] is False


def test_latency_windows_put_late_turns_in_the_last_window() -> None:
    turns = [(10.0, 0.1), (290.0, 0.3), (310.0, 0.2), (700.0, 0.4)]  # the last one after the 600 s run
    rows = latency_windows(turns, seconds=600.0)
    assert [(r["from_min"], r["to_min"], r["turns"]) for r in rows] == [(0.0, 5.0, 2), (5.0, 10.0, 2)]
    assert rows[0]["p95_ms"] == 300.0
