"""Statistics over seeds, written once for every reader: the claims table, the report's figures and method
tables, and the benchmarks.

    half_width_95([3496, 3100, 3900])           # ± of the mean's 95% Student-t interval (None below MIN_RUNS)
    bootstrap(steps, lambda s: np.median(s, axis=-1))   # percentile bootstrap 95% interval of a median

Pure functions of their inputs (the bootstrap's generator is seeded), so a report is a function of the runs' files.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np

MIN_RUNS = 3  # fewer values than this get no interval
BOOTSTRAP_SAMPLES = 4000
BOOTSTRAP_SEED = 0
# t(0.975, df) for df = 1..30: Student's t quantile, checked against its CDF (regularised incomplete beta)
T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t: the table up to df 30, beyond it the Cornish-Fisher expansion
    (Abramowitz & Stegun 26.7.5), within 1e-4 of the exact value there."""
    if df < 1:
        raise ValueError(f"df={df} must be >= 1")
    if df <= len(T975):
        return T975[df - 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    g = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(gi / df ** (i + 1) for i, gi in enumerate(g))


def half_width_95(values: Sequence[float], min_values: int = MIN_RUNS) -> float | None:
    """Half the 95% Student-t interval of the mean of `values`; None with fewer than `min_values` (at least 2)."""
    k = len(values)
    return None if k < max(min_values, 2) else t975(k - 1) * statistics.stdev(values) / math.sqrt(k)


def bootstrap(values: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
              samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of `statistic` (applied along the last axis) over resampled `values`
    (inf values stay inf); (nan, nan) without values."""
    if len(values) == 0:
        return math.nan, math.nan
    return interval_95(statistic(resample(values, seeded(), samples)))


def seeded() -> np.random.Generator:
    """The bootstrap's generator, from the fixed BOOTSTRAP_SEED."""
    return np.random.default_rng(BOOTSTRAP_SEED)


def resample(values: np.ndarray, rng: np.random.Generator, samples: int = BOOTSTRAP_SAMPLES) -> np.ndarray:
    """`samples` rows of `len(values)` draws with replacement."""
    return values[rng.integers(0, len(values), size=(samples, len(values)))]


def interval_95(stats: np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of bootstrap statistics (nearest rank, outward)."""
    stats = np.sort(stats)
    return float(stats[int(0.025 * (len(stats) - 1))]), float(stats[int(math.ceil(0.975 * (len(stats) - 1)))])
