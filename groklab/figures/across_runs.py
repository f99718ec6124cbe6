"""The report's figures across runs: grokking, accuracy and tree-structuredness against a swept key.

Draws `RunResult`s (run directories already loaded by `groklab.results`); never trains.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from groklab import runs
from groklab.figures import plt, save
from groklab.results import NEVER_GROKKED, UNFINISHED, RunResult
from groklab.runs import format_value, run_name, short_names
from groklab.stats import half_width_95

# y axes: "log" (counts such as steps: log scale when every value is positive), "signed" (a delay, which can be
# negative: linear, with a line at zero), "linear" (accuracies and scores)
METRICS: list[tuple[str, Callable[[RunResult], Any], str]] = [
    ("grok step", lambda r: r.stats.get("grok_step"), "log"),
    ("memorise → grok delay (steps)", lambda r: r.delay()[0], "signed"),
    ("grok epoch", lambda r: r.stats.get("grok_epoch"), "log"),
    ("memorise → grok delay (epochs)", lambda r: r.delay()[1], "signed"),
]


def is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def x_axis(values: list[Any]) -> tuple[bool, list[Any], Callable[[Any], Any]]:
    """Whether the swept values are numbers, their order on the axis, and value → x (categories by index)."""
    numeric = is_numeric(values)
    if numeric:
        return True, sorted(set(values)), lambda v: v
    order = list(dict.fromkeys(json.dumps(v) for v in values))
    return False, [json.loads(v) for v in order], lambda v: order.index(json.dumps(v))


def grok_figure(results: list[RunResult], key: str, keys: list[str], out: Path) -> Path:
    """Grok step and the memorise → grok delay (steps, epochs; `RunResult.delay`) against `key`: one line per
    combination of the other swept keys (seeds excepted), the mean over seeds where every seed grokked, each run
    as a dot, and a run that never grokked as a triangle at the top (open while it is still unfinished) — never
    silently dropped."""
    others = [k for k in keys if k != key and not k.endswith(".seed")]
    numeric, order, x_of = x_axis([r.config.get(key) for r in results])
    replicated = any(k.endswith(".seed") for k in keys)
    series: dict[str, list[RunResult]] = {}
    for r in results:
        label = run_name({k: r.config.get(k) for k in others}, short_names(keys), ", ")
        series.setdefault(label, []).append(r)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=110, sharex=True)
    for ax, (title, metric, y_axis) in zip(axes.flat, METRICS, strict=True):
        for i, (label, group) in enumerate(series.items()):
            draw_series(ax, group, key, x_of, metric, f"C{i}", label or ("mean over seeds" if replicated else "runs"))
        finish_axis(ax, title, key, numeric, order, y_axis)
    handles = axes[0][0].get_legend_handles_labels()[0] + legend_proxies(results)
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(f"grokking against {key}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return save(fig, out, fig.dpi)


def accuracy_metrics(results: list[RunResult]) -> list[tuple[str, Callable[[RunResult], Any]]]:
    """Final train / test_id / test_ood accuracy, the best the grok probe reached during training (structural
    grokking is noisy late), and the linear-rule rate where a sequence task logs one."""

    def final(role: str) -> Callable[[RunResult], Any]:
        return lambda r: r.final_acc(role)

    def logged(r: RunResult, suffix: str) -> list[float]:
        probe = r.stats["roles"].get("grok", r.stats["roles"].get("test_id"))
        return [row[f"{probe}/{suffix}"] for row in r.rows if f"{probe}/{suffix}" in row]

    metrics = [(f"final {role} acc", final(role)) for role in ("train", "test_id", "test_ood")
               if any(r.stats["roles"].get(role) for r in results)]
    metrics.append(("best grok-probe acc", lambda r: max(logged(r, "acc"), default=None)))
    if any(logged(r, "linear") for r in results):
        metrics.append(("final linear-rule rate", lambda r: (logged(r, "linear") or [None])[-1]))
    return metrics


def accuracy_figure(results: list[RunResult], key: str, out: Path) -> Path:
    """Accuracies against `key` (the line: mean over every run at that value, whatever the other swept keys,
    with its 95% t-interval from 3 runs on; every run a dot): for runs that never grok the grok-step figure is
    empty, and this one says how far each got."""
    numeric, order, x_of = x_axis([r.config.get(key) for r in results])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, metric) in enumerate(accuracy_metrics(results)):
        by_x: dict[Any, list[float]] = {}
        for r in results:
            y = metric(r)
            if y is not None:
                by_x.setdefault(x_of(r.config.get(key)), []).append(y)
        xs = sorted(by_x)
        for x in xs:
            ax.scatter([x] * len(by_x[x]), by_x[x], color=f"C{i}", s=12, alpha=0.5)
        means, half = zip(*(mean_and_half_width(by_x[x]) for x in xs), strict=True) if xs else ((), ())
        ax.errorbar(xs, means, yerr=half, color=f"C{i}", marker="o", capsize=3, label=label,
                    linestyle=":" if "linear" in label else "-")
    finish_axis(ax, f"accuracy against {key}", key, numeric, order, "linear")
    ax.set(ylim=(-0.02, 1.02), ylabel="accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out, fig.dpi)


def tree_projections(result: RunResult) -> list[dict]:
    """The run's tree-projection checkpoints (`groklab analyze --method tree-projection`), or []."""
    found = runs.read_analyses(result.run_dir, "tree-projection")
    return found[0]["checkpoints"] if found else []


def tree_figure(results: list[RunResult], key: str, out: Path) -> Path | None:
    """Tree-structuredness (Murty et al. 2023): t_score against step for every run, and the last checkpoint's
    t_score and parse F1 against `key`. None when no run has been analysed."""
    analysed = [(r, tree_projections(r)) for r in results]
    analysed = [(r, c) for r, c in analysed if c]
    if not analysed:
        return None
    fig, (by_step, by_key) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=110)
    for i, (r, checkpoints) in enumerate(analysed):
        points = [c for c in checkpoints if c["step"] > 0]
        by_step.plot([c["step"] for c in points], [c["t_score"] for c in points], color=f"C{i % 10}", marker=".",
                     label=r.name)
    by_step.set(xscale="log", xlabel="step (log)", ylabel="t_score", title="tree-structuredness during training")
    by_step.legend(fontsize=7)
    numeric, order, x_of = x_axis([r.config.get(key) for r, _ in analysed])
    xs = [x_of(r.config.get(key)) for r, _ in analysed]
    by_key.scatter(xs, [c[-1]["t_score"] for _, c in analysed], color="C0", label="t_score (left axis)")
    f1_axis = by_key.twinx()  # parse F1 lies in 0..1; t_score is unnormalised
    f1_axis.scatter(xs, [c[-1]["parse_f1"] for _, c in analysed], color="C1", marker="s", label="parse F1 (right)")
    f1_axis.set(ylim=(-0.02, 1.02), ylabel="parse F1")
    finish_axis(by_key, f"tree-structuredness at the last checkpoint against {key}", key, numeric, order, "linear")
    by_key.set(ylabel="t_score")
    by_key.legend(fontsize=8, loc="upper left")
    f1_axis.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return save(fig, out, fig.dpi)


def mean_and_half_width(values: list[float]) -> tuple[float, float]:
    """Mean and half the 95% Student-t interval of the mean (0 with fewer than 3 values: no interval drawn)."""
    return statistics.fmean(values), half_width_95(values) or 0.0


def draw_series(ax: Any, group: list[RunResult], key: str, x_of: Callable, metric: Callable, color: str,
                label: str) -> None:
    """Each run a dot; where every run at a value has one, their mean with its 95% t-interval (≥ 3 runs)."""
    by_x: dict[Any, list[RunResult]] = {}
    for r in group:
        by_x.setdefault(x_of(r.config.get(key)), []).append(r)
    means = []
    for x, runs_at_x in sorted(by_x.items()):
        ys = [metric(r) for r in runs_at_x]
        got = [y for y in ys if y is not None]
        ax.scatter([x] * len(got), got, color=color, s=14, alpha=0.5, zorder=3)
        if got and len(got) == len(ys):
            means.append((x, *mean_and_half_width(got)))
        for r, y in zip(runs_at_x, ys, strict=True):
            if y is None and r.stats.get("grok_step") is None:  # never grokked (or not yet): mark at the top
                face = color if r.finished else "none"
                ax.plot([x], [0.95], marker="^", markersize=9, color=color, markerfacecolor=face,
                        transform=ax.get_xaxis_transform(), clip_on=False, zorder=4, linestyle="none")
    if means:
        xs, ys, half = zip(*means, strict=True)
        ax.errorbar(xs, ys, yerr=half, color=color, marker="o", capsize=3, label=label)


def legend_proxies(results: list[RunResult]) -> list[Any]:
    style = {"color": "grey", "linestyle": "none"}
    proxies = [Line2D([], [], marker="o", markersize=4, alpha=0.5, label="one run", **style)]
    if any(r.state == NEVER_GROKKED for r in results):
        proxies.append(Line2D([], [], marker="^", markersize=8, label="never grokked (drawn at the top)", **style))
    if any(r.state == UNFINISHED for r in results):
        proxies.append(Line2D([], [], marker="^", markersize=8, markerfacecolor="none",
                              label="unfinished, not grokked yet", **style))
    return proxies


def finish_axis(ax: Any, title: str, key: str, numeric: bool, order: list[Any], y_axis: str) -> None:
    """Scales, ticks at the swept values, title; `y_axis` is "log", "signed" or "linear" (see METRICS)."""
    ys = [y for line in ax.get_lines() if line.get_transform() == ax.transData for y in line.get_ydata()]
    ys += [p[1] for c in ax.collections for p in c.get_offsets()]
    if y_axis == "log" and ys and min(ys) > 0:
        ax.set_yscale("log")
    if y_axis == "signed":
        ax.axhline(0, color="grey", linewidth=0.8)
    if numeric and order and min(order) > 0 and max(order) / min(order) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(order)), [format_value(v) for v in order])
    elif len(order) <= 12:  # a tick at each swept value (not 2.25, 2.5 … between 2 and 4 layers)
        ax.set_xticks(order, [format_value(v) for v in order])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ymargin(0.2)
    ax.set(title=title, xlabel=key)
    ax.grid(alpha=0.3)
