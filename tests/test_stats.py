"""The statistics behind the verdicts, on inputs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsts_lib.eval.stats import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTABLE,
    Interval,
    combine,
    paired_bootstrap,
    paired_t_interval,
    verdict,
)


def test_paired_t_interval_matches_the_textbook_value() -> None:
    # d = (1, 2, 3): mean 2, sd 1, se 1/sqrt(3); t_{0.975, 2} = 4.302653
    iv = paired_t_interval([11, 12, 13], [10, 10, 10])
    assert iv.estimate == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert iv.n == 3


def test_paired_t_interval_uses_the_pairing() -> None:
    # Large shared seed effect, constant difference: pairing removes the seed effect entirely.
    a = np.array([10.0, 40.0, 25.0, 70.0])
    iv = paired_t_interval(a + 1.5, a)
    assert (iv.low, iv.high) == pytest.approx((1.5, 1.5))


@pytest.mark.parametrize("a, b", [([1.0], [0.0]), ([1.0, 2.0], [0.0]), ([1, float("nan")], [0, 0])])
def test_paired_t_interval_refuses_bad_input(a, b) -> None:
    with pytest.raises(ValueError):
        paired_t_interval(a, b)


def test_bootstrap_of_a_constant_difference_is_a_point() -> None:
    diffs = np.full(20, 3.0)
    iv = paired_bootstrap(lambda c: float(np.average(diffs, weights=c)), 20, resamples=200)
    assert (iv.low, iv.estimate, iv.high) == pytest.approx((3.0, 3.0, 3.0))


def test_bootstrap_interval_of_a_mean_has_the_normal_width() -> None:
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.0, 1.0, 400)
    iv = paired_bootstrap(lambda c: float(np.average(diffs, weights=c)), len(diffs),
                          resamples=2000, seed=3)
    expected = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert iv.estimate == pytest.approx(diffs.mean())
    assert iv.half_width == pytest.approx(expected, rel=0.15)
    assert iv.low < diffs.mean() < iv.high


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    diffs = np.arange(10, dtype=float)
    f = lambda c: float(np.average(diffs, weights=c))  # noqa: E731
    assert str(paired_bootstrap(f, 10, seed=5)) == str(paired_bootstrap(f, 10, seed=5))


def test_combine_adds_half_widths_in_quadrature() -> None:
    seeds = Interval(2.0, -1.0, 5.0, 0.95, 5, "t")
    videos = Interval(2.0, -2.0, 6.0, 0.95, 1000, "boot")
    iv = combine(seeds, videos)
    assert iv.estimate == 2.0
    assert iv.half_width == pytest.approx(5.0)  # hypot(3, 4)
    with pytest.raises(ValueError):
        combine(seeds, Interval(2.0, 1.0, 3.0, 0.9, 10, "boot"))


@pytest.mark.parametrize("low, high, direction, engaged, expected", [
    (0.5, 3.0, 1, True, HELD),
    (-3.0, -0.5, 1, True, NOT_HELD),
    (-0.5, 3.0, 1, True, INCONCLUSIVE),
    (0.0, 3.0, 1, True, INCONCLUSIVE),  # touching zero does not exclude it
    (-3.0, -0.5, -1, True, HELD),  # claimed a < b
    (0.5, 3.0, -1, True, NOT_HELD),
    (0.5, 3.0, 1, False, NOT_TESTABLE),
])
def test_verdict_rule(low, high, direction, engaged, expected) -> None:
    iv = Interval((low + high) / 2, low, high, 0.95, 5, "t")
    assert verdict(iv, direction, engaged) == expected
