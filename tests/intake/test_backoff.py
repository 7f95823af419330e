"""The one backoff-with-jitter rule: doubling, the cap, and the jitter band."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.backoff import Uniform, backoff_delay


def _low(a: float, b: float) -> float:
    return a


def _middle(a: float, b: float) -> float:
    return (a + b) / 2


def _high(a: float, b: float) -> float:
    return b


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (10, 300.0)],
    ids=["first", "doubles", "again", "capped"],
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_delay(failures, 2.0, 300.0, 0.2, _middle) == expected
    assert backoff_delay(failures, 2.0, 300.0, 0.2, _high) == pytest.approx(expected * 1.2)
    assert backoff_delay(failures, 2.0, 300.0, 0.2, _low) == pytest.approx(expected * 0.8)


@pytest.mark.parametrize(
    ("jitter", "band"),
    [(0.1, (27.0, 33.0)), (0.2, (24.0, 36.0))],
    ids=["pipeline-and-outbox-10pct", "imap-20pct"],
)
def test_the_jitter_band_is_plus_minus_the_fraction(
    jitter: float, band: tuple[float, float]
) -> None:
    drawn: list[tuple[float, float]] = []

    def record(a: float, b: float) -> float:
        drawn.append((a, b))
        return a

    assert backoff_delay(1, 30.0, 3600.0, jitter, record) == pytest.approx(band[0])
    assert drawn == [pytest.approx((1 - jitter, 1 + jitter))]
    assert backoff_delay(1, 30.0, 3600.0, jitter, _high) == pytest.approx(band[1])


def test_the_default_randomness_stays_in_the_band() -> None:
    delays = [backoff_delay(3, 2.0, 300.0, 0.2) for _ in range(200)]
    assert all(8.0 * 0.8 <= d <= 8.0 * 1.2 for d in delays)


def test_a_poller_failing_for_ever_waits_the_cap_and_does_not_overflow() -> None:
    assert backoff_delay(5000, 2.0, 300.0, 0.2, _middle) == 300.0


initials = st.floats(min_value=0.001, max_value=1e4, allow_nan=False)
ratios = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)
jitters = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)
attempts = st.integers(min_value=1, max_value=3000)
draws: st.SearchStrategy[Uniform] = st.sampled_from([_low, _middle, _high])


@given(attempts, initials, ratios, jitters, draws)
def test_delay_is_monotone_in_attempts_up_to_the_cap(
    attempt: int, initial: float, ratio: float, jitter: float, uniform: Uniform
) -> None:
    maximum = initial * ratio
    earlier = backoff_delay(attempt, initial, maximum, jitter, uniform)
    later = backoff_delay(attempt + 1, initial, maximum, jitter, uniform)
    assert earlier <= later


@given(attempts, initials, ratios, jitters, st.floats(min_value=0.0, max_value=1.0))
def test_delay_stays_between_initial_and_maximum_widened_by_the_jitter(
    attempt: int, initial: float, ratio: float, jitter: float, position: float
) -> None:
    maximum = initial * ratio

    def uniform(a: float, b: float) -> float:
        return a + (b - a) * position

    delay = backoff_delay(attempt, initial, maximum, jitter, uniform)
    assert initial * (1 - jitter) <= delay * (1 + 1e-12)
    assert delay <= maximum * (1 + jitter) * (1 + 1e-12)
