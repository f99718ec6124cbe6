"""Figures, drawn from what run directories hold (metrics, summaries, analysis JSON), never from a live model
and never by importing analysis code: labels come from the data written beside each figure.

    accuracy.py     one run's accuracy curves (its accuracy.png and the report's per-run figures)
    analysis.py     the figures of each analysis method (named in groklab.analysis.methods)
    across_runs.py  the report's figures: grokking and accuracy against a swept key
    methods.py      methods compared over seeds: steps to grok per method (a sweep with [methods])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

if not os.environ.get("MPLBACKEND"):  # a Jupyter kernel names its inline backend there: keep it (tutorials/)
    matplotlib.use("Agg")  # no screen needed
import matplotlib.pyplot as plt  # noqa: E402

from groklab import runs  # noqa: E402


def save(fig: Any, path: Path, dpi: float = 120) -> Path:
    """Write a PNG through the run directory's atomic writer, and free the figure."""
    runs.write_figure(fig, path, dpi)
    plt.close(fig)
    return path


__all__ = ["plt", "save"]
