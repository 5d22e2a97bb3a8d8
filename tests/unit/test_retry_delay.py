"""The one backoff: the ceiling starts at ``first``, doubles with each failed attempt and stops
at ``cap``; the wait is drawn uniformly from the ceiling's upper half (equal jitter)."""

from __future__ import annotations

import random
import statistics

import pytest

from sladaemon.escalate.retry import retry_delay


class FixedRoll(random.Random):
    """A random source whose every draw is ``roll``."""

    def __init__(self, roll: float) -> None:
        super().__init__(0)
        self.roll = roll

    def random(self) -> float:
        return self.roll


LOWEST, HIGHEST = FixedRoll(0.0), FixedRoll(1.0)


def ceilings(first: float, cap: float, attempts: range) -> list[float]:
    return [retry_delay(n, first, cap, HIGHEST) for n in attempts]


def test_the_first_wait_is_between_half_of_first_and_first() -> None:
    assert retry_delay(1, 5.0, 600.0, LOWEST) == 2.5
    assert retry_delay(1, 5.0, 600.0, HIGHEST) == 5.0


def test_attempts_below_one_wait_as_the_first() -> None:
    assert retry_delay(0, 5.0, 600.0, HIGHEST) == 5.0
    assert retry_delay(-3, 5.0, 600.0, LOWEST) == 2.5


def test_the_ceiling_doubles_with_each_failed_attempt() -> None:
    assert ceilings(5.0, 10_000.0, range(1, 8)) == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0]
    assert ceilings(0.25, 10_000.0, range(1, 4)) == [0.25, 0.5, 1.0]


def test_the_ceiling_stops_at_the_cap_and_stays_there() -> None:
    assert ceilings(5.0, 60.0, range(1, 7)) == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert ceilings(15.0, 60.0, range(3, 5)) == [60.0, 60.0], "reaching the cap exactly"
    assert retry_delay(500, 5.0, 60.0, HIGHEST) == 60.0, "no overflow after many attempts"
    assert retry_delay(500, 5.0, 60.0, LOWEST) == 30.0
    assert retry_delay(1, 5.0, 2.0, HIGHEST) == 2.0, "a cap below first wins"


@pytest.mark.parametrize(
    ("roll", "share"), [(0.0, 0.5), (0.25, 0.625), (0.5, 0.75), (0.75, 0.875), (1.0, 1.0)]
)
def test_the_wait_is_linear_in_the_draw_over_the_upper_half(roll: float, share: float) -> None:
    assert retry_delay(3, 5.0, 600.0, FixedRoll(roll)) == pytest.approx(20.0 * share)


@pytest.mark.parametrize("attempts", [1, 2, 4, 9])
def test_seeded_waits_fill_the_upper_half_of_the_ceiling_evenly(attempts: int) -> None:
    ceiling = min(60.0, 5.0 * 2 ** (attempts - 1))
    rng = random.Random(20240108 + attempts)
    waits = [retry_delay(attempts, 5.0, 60.0, rng) for _ in range(4000)]
    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert min(waits) < ceiling * 0.51 and max(waits) > ceiling * 0.99, "the whole half is used"
    assert statistics.fmean(waits) == pytest.approx(0.75 * ceiling, rel=0.02)
    below = sum(wait < 0.75 * ceiling for wait in waits) / len(waits)
    assert below == pytest.approx(0.5, abs=0.03), "uniform: as many in each quarter"


def test_the_same_seed_gives_the_same_waits() -> None:
    first = [retry_delay(n, 1.0, 30.0, random.Random(7)) for n in range(1, 9)]
    again = [retry_delay(n, 1.0, 30.0, random.Random(7)) for n in range(1, 9)]
    assert first == again


def test_without_a_random_source_the_waits_keep_the_same_bounds() -> None:
    waits = [retry_delay(2, 5.0, 60.0) for _ in range(500)]
    assert all(5.0 <= wait <= 10.0 for wait in waits)
    assert len(set(waits)) > 1, "jittered"
