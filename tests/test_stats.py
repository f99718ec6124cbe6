"""groklab.stats: the statistics every reader shares (claims table, report figures, method tables, benchmarks).

The 95% intervals use a table of Student's t(0.975, df) for df ≤ 30 (checked here against values of the t CDF
computed with mpmath) and the Cornish-Fisher expansion beyond; scipy is not needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from groklab import stats


def test_t_quantiles():
    # t(0.975, df) from the Student t CDF (regularised incomplete beta, mpmath): the table, then the expansion
    exact = {1: 12.7062, 2: 4.3027, 10: 2.2281, 30: 2.0423, 31: 2.0395, 40: 2.0211, 60: 2.0003, 120: 1.9799}
    for df, t in exact.items():
        assert stats.t975(df) == pytest.approx(t, abs=1e-4), df
    assert stats.t975(10**6) == pytest.approx(1.95996, abs=1e-4)  # the normal quantile
    with pytest.raises(ValueError):
        stats.t975(0)


def test_half_width_matches_the_formula_and_needs_enough_values():
    s = math.sqrt((300**2 + 100**2 + 200**2) / 2)
    assert stats.half_width_95([3000, 3400, 3500]) == pytest.approx(4.3027 * s / math.sqrt(3))
    assert stats.half_width_95([3000, 3400]) is None  # below MIN_RUNS: no interval
    two = stats.half_width_95([3000, 3400], min_values=2)
    assert two == pytest.approx(12.7062 * math.sqrt(2 * 200**2) / math.sqrt(2))
    assert stats.half_width_95([3000], min_values=1) is None  # one value has no spread, whatever is asked


def test_bootstrap_is_reproducible_and_degenerate_when_all_equal():
    values = np.array([5.0, 5.0, 5.0])
    assert stats.bootstrap(values, lambda s: np.median(s, axis=-1)) == (5.0, 5.0)
    noisy = np.array([1.0, 7.0, 3.0, 9.0, 4.0])
    first = stats.bootstrap(noisy, lambda s: np.median(s, axis=-1))
    assert first == stats.bootstrap(noisy, lambda s: np.median(s, axis=-1)) and first[0] < first[1]
    assert math.isnan(stats.bootstrap(np.array([]), lambda s: np.median(s, axis=-1))[0])


def test_interval_95_takes_the_outer_nearest_ranks():
    assert stats.interval_95(np.arange(101.0)[::-1]) == (2.0, 98.0)
