"""Methods compared over seeds: the statistics behind `groklab report` on a sweep with `[methods]`.

Each method runs a small hyper-parameter grid of its own (its variants), every variant over the same seeds. Per
variant: the fraction of seeds that grokked, the median steps to grok with a bootstrap 95% interval, and the median
wall time per run. A run that never grokked within its budget counts as +inf steps, so the median is the honest,
budget-censored statistic (it is "> budget" when half or more of the seeds never grokked) rather than a mean over
the lucky seeds. A method is compared at its best variant (most seeds grokked, then fewest median steps), as the
baseline is; its speed-up is the baseline's median over its own, with a bootstrap interval that resamples the
seeds of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from groklab.results import UNFINISHED, RunResult
from groklab.runs import METHOD, run_name, short_names
from groklab.stats import bootstrap, interval_95, resample, seeded


@dataclass(frozen=True)
class Variant:
    """One method at one point of its own grid, over the sweep's seeds."""

    method: str
    setting: str  # "weight_decay=0.1", or "" for a method without a grid of its own
    runs: tuple[RunResult, ...]

    @property
    def label(self) -> str:
        return f"{self.method} ({self.setting})" if self.setting else self.method

    @property
    def done(self) -> list[RunResult]:
        """Runs whose outcome is known: grokked, or finished without grokking."""
        return [r for r in self.runs if r.state != UNFINISHED]

    @property
    def steps(self) -> np.ndarray:
        """Steps to grok of the runs done; +inf for a run that never grokked."""
        return np.array([inf_if_none(r.stats.get("grok_step")) for r in self.done], dtype=float)

    @property
    def grokked(self) -> int:
        return int(np.isfinite(self.steps).sum())

    @property
    def budget(self) -> int | None:
        """The largest step budget among the runs (what "never grokked" means)."""
        budgets = [r.config.get("train.steps") for r in self.runs if r.config.get("train.steps")]
        return max(budgets) if budgets else None

    @property
    def median_steps(self) -> float:
        return float(np.median(self.steps)) if len(self.steps) else math.nan

    def median_ci(self) -> tuple[float, float]:
        return bootstrap(self.steps, lambda s: np.median(s, axis=-1))

    @property
    def median_wall_s(self) -> float:
        walls = [r.stats.get("elapsed_s") for r in self.done if r.stats.get("elapsed_s") is not None]
        return float(np.median(walls)) if walls else math.nan

    def rank(self) -> tuple[float, float]:
        """Sort key for "best": most seeds grokked (as a fraction), then fewest median steps."""
        fraction = self.grokked / len(self.done) if self.done else 0.0
        return (-fraction, self.median_steps if not math.isnan(self.median_steps) else math.inf)


def inf_if_none(value: int | None) -> float:
    return math.inf if value is None else float(value)


def speedup(baseline: Variant, other: Variant) -> tuple[str, float, float, float]:
    """Baseline median steps / the other's, with a 95% bootstrap interval (the seeds of both resampled). A median
    that is censored (half the seeds or more never grokked) is replaced by its budget, which turns the ratio into
    a bound: qualifier "≥" when the baseline's is censored, "≤" when the other's is, "?" when both are."""
    a, b = baseline.steps, other.steps
    if not len(a) or not len(b):
        return "", math.nan, math.nan, math.nan
    censored_a, censored_b = math.isinf(np.median(a)), math.isinf(np.median(b))
    qualifier = "?" if censored_a and censored_b else "≥" if censored_a else "≤" if censored_b else ""
    a = np.where(np.isinf(a), baseline.budget or math.inf, a)
    b = np.where(np.isinf(b), other.budget or math.inf, b)
    rng = seeded()
    ma, mb = np.median(resample(a, rng), axis=-1), np.median(resample(b, rng), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = ma / mb
        point = float(np.median(a) / np.median(b))
    return qualifier, point, *interval_95(ratios)


def variants(results: list[RunResult], keys: list[str]) -> list[Variant]:
    """Runs grouped by method and by the method's own settings (the swept keys, seeds excepted, that take more
    than one value among that method's runs); seeds are pooled."""
    own = [k for k in keys if k != METHOD and not k.endswith(".seed")]
    names = short_names(keys)
    by_method: dict[str, list[RunResult]] = {}
    for r in results:
        if r.config.get(METHOD) is not None:
            by_method.setdefault(r.config[METHOD], []).append(r)
    out = []
    for method, method_runs in by_method.items():
        setting_keys = [k for k in own if len({repr(r.config.get(k)) for r in method_runs}) > 1]
        groups: dict[str, list[RunResult]] = {}
        for r in method_runs:
            setting = run_name({k: r.config.get(k) for k in setting_keys}, names)
            groups.setdefault(setting, []).append(r)
        out += [Variant(method, setting, tuple(group)) for setting, group in groups.items()]
    return out


def best_per_method(all_variants: list[Variant]) -> list[Variant]:
    """Each method's best variant, in the order methods first appear."""
    best: dict[str, Variant] = {}
    for v in all_variants:
        if v.method not in best or v.rank() < best[v.method].rank():
            best[v.method] = v
    return list(best.values())


def show_steps(value: float, budget: int | None) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return f"> {budget:,}" if budget else "never"
    return f"{value:,.0f}"


def show_ratio(value: float) -> str:
    return "—" if math.isnan(value) or math.isinf(value) else f"×{value:.2f}"


def table(all_variants: list[Variant], baseline: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and one row per variant, best variant of each method first and marked ★; speed-up against the
    best variant of the `baseline` method when the sweep names one ("≤ ×0.35": the variant's median is censored
    at its budget, so it is at most that fast; "≥": the baseline's is)."""
    best = best_per_method(all_variants)
    reference = next((v for v in best if v.method == baseline), None)
    header = ["method", "setting", "best", "grokked", "median steps to grok", "95% CI (bootstrap)",
              "median wall (s)", f"speed-up vs {baseline} (95% CI)" if reference else "speed-up"]
    rows = []
    for method_best in best:
        for v in [method_best] + [v for v in all_variants if v.method == method_best.method and v is not method_best]:
            lo, hi = v.median_ci()
            ratio = "—"
            if reference is not None and v is not reference:
                bound, point, rlo, rhi = speedup(reference, v)
                ratio = "— (neither grokked)" if bound == "?" else \
                    f"{bound}{show_ratio(point)} ({show_ratio(rlo)}–{show_ratio(rhi)})"
            pending = len(v.runs) - len(v.done)
            rows.append([
                v.method, v.setting or "—", "★" if v is method_best else "",
                f"{v.grokked}/{len(v.done)}" + (f" (+{pending} running)" if pending else ""),
                show_steps(v.median_steps, v.budget), f"{show_steps(lo, v.budget)} – {show_steps(hi, v.budget)}",
                "—" if math.isnan(v.median_wall_s) else f"{v.median_wall_s:.0f}", ratio,
            ])
    return header, rows
