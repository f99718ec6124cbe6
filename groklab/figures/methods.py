"""Methods compared over seeds: steps to grok per method as a box over the seeds with every seed drawn as a dot,
a seed that never grokked as a triangle above the budget line (never dropped), and the median's bootstrap 95%
interval as a bar beside each box."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from groklab.figures import plt, save
from groklab.method_stats import Variant


def steps_figure(variants: list[Variant], out: Path, title: str = "steps to grok by method") -> Path:
    budget = max((v.budget for v in variants if v.budget), default=None)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(variants) + 2), 4.5), dpi=120)
    rng = np.random.default_rng(0)  # horizontal jitter only, fixed so the figure is reproducible
    top = budget * 1.25 if budget else None
    for i, v in enumerate(variants):
        steps = v.steps
        finite = steps[np.isfinite(steps)]
        if len(finite):
            ax.boxplot(finite, positions=[i], widths=0.5, showfliers=False, medianprops={"color": "black"})
        jitter = rng.uniform(-0.15, 0.15, size=len(steps))
        ax.scatter(i + jitter[np.isfinite(steps)], finite, s=14, color=f"C{i % 10}", zorder=3)
        never = int((~np.isfinite(steps)).sum())
        if never and top:
            ax.scatter(i + jitter[~np.isfinite(steps)], [top] * never, marker="^", s=26, facecolors="none",
                       edgecolors=f"C{i % 10}", zorder=3)
        median, (lo, hi) = v.median_steps, v.median_ci()
        if math.isfinite(median) and top:
            ax.errorbar(i + 0.32, median, yerr=[[median - lo], [min(hi, top) - median]], fmt="D", ms=4,
                        color="black", capsize=3, lw=1)
    if budget:
        ax.axhline(budget, color="grey", linestyle=":", linewidth=1)
        ax.text(len(variants) - 0.5, budget, f"budget {budget:,}: ▲ never grokked", ha="right", va="bottom",
                fontsize=8, color="grey")
    ax.set_xticks(range(len(variants)), [f"{v.label}\n{v.grokked}/{len(v.done)}" for v in variants],
                  rotation=30, ha="right", fontsize=8)
    ax.set(yscale="log", ylabel="steps to grok (log)", title=title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save(fig, out)
