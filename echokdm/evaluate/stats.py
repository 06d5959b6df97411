"""Summary statistics of per-case scores: means with percentile-bootstrap 95% confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval over ``n`` finite values (nan when ``n`` is 0)."""

    mean: float
    lo: float
    hi: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``mean [lo, hi]`` rounded to ``digits`` decimals; ``n/a`` when there is no value."""
        if self.n == 0:
            return "n/a"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap ``1 - alpha`` confidence interval.

    Non-finite values (failed measurements) are dropped first. Resampling is seeded, so the interval is
    reproducible.

    Args:
        values: (N,) per-case values.
        n_boot: number of bootstrap resamples.
        alpha: 0.05 gives a 95% interval.
        seed: seed of the resampling.

    Returns:
        The mean and interval over the finite values, and their count.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(v.mean()), float(lo), float(hi), int(v.size))


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """Mean of ``a - b`` over cases where both are finite, with a bootstrap confidence interval.

    Args:
        a: (N,) values of one predictor.
        b: (N,) values of another predictor on the same cases, in the same order.
        n_boot: number of bootstrap resamples.
        alpha: 0.05 gives a 95% interval.
        seed: seed of the resampling.

    Returns:
        The paired mean difference and its interval.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return bootstrap_ci(a[ok] - b[ok], n_boot=n_boot, alpha=alpha, seed=seed)
