"""Bootstrap confidence intervals and paired differences of the evaluation summary."""

import numpy as np
import pytest

from echokdm.evaluate.stats import bootstrap_ci, paired_difference


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(5.0, 1.0, 20), seed=1)
    large = bootstrap_ci(rng.normal(5.0, 1.0, 2000), seed=1)
    assert small.lo < small.mean < small.hi
    assert large.lo < 5.0 < large.hi
    assert (large.hi - large.lo) < (small.hi - small.lo) / 5
    # about 2 * 1.96 * sigma / sqrt(n)
    assert (large.hi - large.lo) == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.15)


def test_bootstrap_ci_coverage_near_95_percent():
    rng = np.random.default_rng(2)
    covered = 0
    for k in range(200):
        e = bootstrap_ci(rng.normal(0.0, 1.0, 40), n_boot=500, seed=k)
        covered += e.lo < 0.0 < e.hi
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_ci_is_seeded_and_drops_non_finite():
    v = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 3.0])
    a, b = bootstrap_ci(v, seed=3), bootstrap_ci(v, seed=3)
    assert a == b
    assert a.n == 4 and a.mean == pytest.approx(2.5)
    empty = bootstrap_ci(np.array([np.nan]))
    assert empty.n == 0 and empty.format() == "n/a"


def test_constant_values_give_a_zero_width_interval():
    e = bootstrap_ci(np.full(10, 0.7))
    assert e.lo == pytest.approx(0.7) and e.hi == pytest.approx(0.7)


def test_paired_difference_uses_pairs_not_marginals():
    rng = np.random.default_rng(4)
    base = rng.normal(0.0, 10.0, 30)  # large between-case spread
    a, b = base + 0.5 + rng.normal(0, 0.05, 30), base
    d = paired_difference(a, b, seed=0)
    assert d.lo > 0.4 and d.hi < 0.6  # paired CI excludes 0 although the marginal CIs overlap
    assert bootstrap_ci(a).lo < bootstrap_ci(b).hi
    b_nan = b.copy()
    b_nan[0] = np.nan
    assert paired_difference(a, b_nan).n == 29
    with pytest.raises(ValueError):
        paired_difference(a, b[:5])
