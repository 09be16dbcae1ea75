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


def weighted_mean(values: np.ndarray):
    """The bootstrap statistic 'mean of `values`' for each row of unit counts."""
    return lambda counts: counts @ values / counts.sum(axis=1)


def test_bootstrap_of_a_constant_difference_is_a_point() -> None:
    diffs = np.full(20, 3.0)
    iv = paired_bootstrap(weighted_mean(diffs), 20, resamples=200)
    assert (iv.low, iv.estimate, iv.high) == pytest.approx((3.0, 3.0, 3.0))


def test_bootstrap_interval_of_a_mean_has_the_normal_width() -> None:
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.0, 1.0, 400)
    iv = paired_bootstrap(weighted_mean(diffs), len(diffs), resamples=2000, seed=3)
    expected = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert iv.estimate == pytest.approx(diffs.mean())
    assert iv.half_width == pytest.approx(expected, rel=0.15)
    assert iv.low < diffs.mean() < iv.high


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    diffs = np.arange(10, dtype=float)
    f = weighted_mean(diffs)
    assert str(paired_bootstrap(f, 10, seed=5)) == str(paired_bootstrap(f, 10, seed=5))


def test_bootstrap_draws_the_resamples_of_the_one_at_a_time_rule() -> None:
    # All resamples are scored in one call; a seed still gives the resamples (and so the
    # interval) that drawing and scoring them one by one gave.
    diffs = np.random.default_rng(2).normal(size=15)
    rng = np.random.default_rng(7)
    one_by_one = [float(np.average(diffs, weights=np.bincount(rng.integers(0, 15, 15),
                                                              minlength=15)))
                  for _ in range(300)]
    low, high = np.quantile(one_by_one, [0.025, 0.975])
    iv = paired_bootstrap(weighted_mean(diffs), 15, resamples=300, seed=7)
    assert (iv.low, iv.high) == pytest.approx((min(low, iv.estimate), max(high, iv.estimate)),
                                              abs=1e-12)
    assert iv.estimate == pytest.approx(diffs.mean())
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(lambda c: c.sum(), 15, resamples=20)


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
