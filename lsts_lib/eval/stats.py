"""Paired statistics behind the report's verdicts.

A claim compares two variants trained from the same seeds ("variant k of seed s starts from
stage-1 seed s"), so the unit of evidence is the per-seed difference d_s = a_s - b_s. Two
sources of noise are in play and both are measured:

* training noise: the spread of d_s over seeds, a Student-t interval on their mean;
* test-set noise: how much the seed-averaged difference moves when the test videos are
  resampled with replacement (a paired bootstrap: the same resample for both variants).

The claim's interval combines the two half-widths in quadrature (independent sources), and
`verdict` reads it with a rule fixed before any final run: held when the interval excludes
zero in the claimed direction, not held when it excludes zero the other way, inconclusive
otherwise, and not testable when the mechanism the claim is about did not engage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["Interval", "paired_t_interval", "paired_bootstrap", "combine", "verdict",
           "Verdict", "HELD", "NOT_HELD", "INCONCLUSIVE", "NOT_TESTABLE"]

HELD, NOT_HELD, INCONCLUSIVE, NOT_TESTABLE = "held", "not held", "inconclusive", "not testable"
Verdict = Literal["held", "not held", "inconclusive", "not testable"]


@dataclass(frozen=True)
class Interval:
    """A confidence interval around an estimate (`low` <= `estimate` <= `high`)."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int  # seeds (t-interval) or resamples (bootstrap)
    method: str

    @property
    def half_width(self) -> float:
        return max(self.estimate - self.low, self.high - self.estimate)

    def __str__(self) -> str:
        return (f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}] "
                f"({100 * self.confidence:.0f} % {self.method}, n={self.n})")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def paired_t_interval(a: Sequence[float], b: Sequence[float],
                      confidence: float = 0.95) -> Interval:
    """Student-t interval on the mean of the paired differences a_s - b_s.

    `a` and `b` are per-seed scores in the same seed order. With identical differences the
    interval collapses to a point (no training noise was seen, not an infinitely sure claim:
    the bootstrap term then carries the width).
    """
    _check_confidence(confidence)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {x.shape} and {y.shape}")
    n = len(x)
    if n < 2:
        raise ValueError(f"a t-interval needs at least 2 paired seeds, got {n}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired scores must be finite")
    d = x - y
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, confidence, n, "paired t over seeds")


def paired_bootstrap(
    score: Callable[[np.ndarray], np.ndarray],
    num_units: int,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of a paired statistic over resampled test units (videos).

    `score(counts)` returns the statistic (e.g. mean over seeds of mAP_a - mAP_b) for each
    row of `counts` (shape (k, num_units)), test unit i being counted `counts[r, i]` times
    in row r; a row of ones is the observed test set. Each resample draws `num_units` units
    with replacement, the same draw for both variants, so the videos' shared difficulty
    cancels in the difference. All resamples go to `score` in one call, so that it may
    score them together.
    """
    _check_confidence(confidence)
    if num_units < 2:
        raise ValueError(f"a bootstrap over test units needs at least 2 units, got {num_units}")
    if resamples < 10:
        raise ValueError(f"resamples must be >= 10, got {resamples}")
    rng = np.random.default_rng(seed)
    # One rng call per resample: a seed gives the same resamples as it always did.
    counts = np.stack([np.bincount(rng.integers(0, num_units, num_units), minlength=num_units)
                       for _ in range(resamples)])

    def scores(rows: np.ndarray) -> np.ndarray:
        out = np.asarray(score(rows), dtype=np.float64)
        if out.shape != (len(rows),):
            raise ValueError(f"score must return one value per row of counts: shape "
                             f"{(len(rows),)}, got {out.shape}")
        return out

    observed = float(scores(np.ones((1, num_units), dtype=np.int64))[0])
    draws = scores(counts)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return Interval(observed, float(min(low, observed)), float(max(high, observed)), confidence,
                    resamples, "paired bootstrap over test videos")


def combine(seeds: Interval, videos: Interval) -> Interval:
    """One interval for training + test-set noise: half-widths added in quadrature.

    Centred on the seed-mean difference (the bootstrap's observed value is the same number
    computed on the same test set; the seed interval is the one a reader re-derives).
    """
    if not math.isclose(seeds.confidence, videos.confidence):
        raise ValueError("intervals to combine must share a confidence level")
    half = math.hypot(seeds.half_width, videos.half_width)
    return Interval(seeds.estimate, seeds.estimate - half, seeds.estimate + half,
                    seeds.confidence, seeds.n, "seeds + test videos")


def verdict(interval: Interval, direction: Literal[1, -1] = 1, engaged: bool = True) -> Verdict:
    """The fixed rule: `direction` +1 claims a > b, -1 claims a < b.

    not testable: the mechanism did not engage (e.g. offsets that never moved);
    held: the whole interval lies on the claimed side of zero;
    not held: the whole interval lies on the other side;
    inconclusive: the interval contains zero.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if not engaged:
        return NOT_TESTABLE
    low, high = direction * interval.low, direction * interval.high
    low, high = min(low, high), max(low, high)
    if low > 0:
        return HELD
    if high < 0:
        return NOT_HELD
    return INCONCLUSIVE
