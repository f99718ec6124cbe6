"""Log-spaced evaluation and checkpoint steps.

Grokking unfolds across decades of steps, so we evaluate densely early and sparsely late (STYLE: never every
100 steps). What the evaluations show — fit and grok steps — is `groklab.grokking`'s job.
"""

from __future__ import annotations

import numpy as np


def log_spaced_steps(total: int, points: int, include_zero: bool = True, start: int = 1) -> list[int]:
    """About `points` distinct steps in [start, total], log-spaced, always including `total` (and 0 if asked).

    A later `start` spends the points where a run's events happen instead of on its first few steps (each
    evaluation of a large probe set can cost several training steps)."""
    first = min(max(start, 1), max(total, 1))
    grid = np.round(np.logspace(np.log10(first), np.log10(max(total, 1)), num=max(points, 1))).astype(int)
    steps = sorted({int(s) for s in np.unique(grid) if first <= s <= total} | {total})
    return ([0] if include_zero else []) + steps
