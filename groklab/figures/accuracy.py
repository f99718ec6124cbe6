"""One run's accuracy against step: its `accuracy.png`, and the per-run figures of a report."""

from __future__ import annotations

import math
from pathlib import Path

from groklab import runs
from groklab.figures import plt, save

# role -> (colour, label, line width, line style): the test probes bold, the knowledge base's atomic facts thin
ROLE_STYLE = {
    "train": ("tab:blue", "train", 1.5, "-"),
    "test_id": ("tab:green", "test (ID)", 1.5, "-"),
    "test_ood": ("tab:red", "test (OOD)", 1.5, "-"),
    "atomic_id": ("tab:cyan", "atomic (ID)", 0.9, "--"),
    "atomic_ood": ("tab:orange", "atomic (OOD)", 0.9, "--"),
}


def probes_by_role(roles: dict[str, str]) -> dict[str, str]:
    """Probe -> the first role (in ROLE_STYLE order) that names it, so a probe with two roles is drawn once."""
    out: dict[str, str] = {}
    for role in ROLE_STYLE:
        if role in roles:
            out.setdefault(roles[role], role)
    return out


def curve(points: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of `key` (NaN where a row lacks it)."""
    return [r["step"] for r in points], [r.get(key, math.nan) for r in points]


def draw_roles(ax, points: list[dict], roles: dict[str, str]) -> None:
    """Each role's probe in its style, labelled with its probe name. A task that names a "grok" role (its grok
    step is read on another probe than the ID test) has that probe drawn bold and marked."""
    grok_probe = roles.get("grok")
    for probe, role in probes_by_role(roles).items():
        color, label, width, style = ROLE_STYLE[role]
        marked = probe == grok_probe
        ax.plot(*curve(points, f"{probe}/acc"), color=color, linestyle=style, linewidth=width * (1.8 if marked else 1),
                marker="." if width > 1 else None, label=f"{label}: {probe}" + (" (grok probe)" if marked else ""))


# the diagnostics logged at every evaluation (groklab.accelerators.diagnostics), drawn in a second panel
DIAGNOSTICS = {
    "train/softmax_collapse": ("tab:red", "softmax collapse (fraction of training answers at p = 1)"),
    "train/grad_weight_cos": ("tab:purple", "cos(gradient, weights)"),
}
WEIGHT_NORMS = ("weights/matrix_norm", "weights/norm")  # the first a run logged is drawn: matrices, else all


def accuracy_curves(
    rows: list[dict], roles: dict[str, str], out: Path, title: str = "", summary: dict | None = None
) -> Path:
    """Accuracy against step (log x axis) of the probes named by the run's roles — train, the ID and OOD tests
    and the atomic facts — and of any other probe, with fit and grok steps marked; below it, when the run logged
    them, the weight norm, softmax collapse and gradient–weight cosine on the same step axis (Prieto et al.'s
    signs of naive loss minimisation)."""
    points = [r for r in rows if r["step"] > 0]
    diagnosed = any(k in r for r in points for k in (*WEIGHT_NORMS, *DIAGNOSTICS))
    if diagnosed:
        fig, (ax, lower) = plt.subplots(2, 1, figsize=(7, 6), dpi=120, sharex=True, height_ratios=(2.2, 1))
        draw_diagnostics(lower, points, summary)
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    draw_roles(ax, points, roles)
    shown = set(probes_by_role(roles))
    for name in sorted({k.removesuffix("/acc") for r in points for k in r if k.endswith("/acc")} - shown):
        ax.plot(*curve(points, f"{name}/acc"), linewidth=0.8, alpha=0.5, linestyle="--", label=name)
    color_of = {probe: ROLE_STYLE[role][0] for probe, role in probes_by_role(roles).items()}
    for i, name in enumerate(sorted({k.removesuffix("/linear") for r in points for k in r if k.endswith("/linear")})):
        steps = [r["step"] for r in points if f"{name}/linear" in r]  # sequence tasks: the linear-rule rate
        ax.plot(steps, [r[f"{name}/linear"] for r in points if f"{name}/linear" in r], linestyle=":",
                color=color_of.get(name, f"C{i + 3}"), label=f"{name}: follows the linear rule")
    for key, style in (("fit_step", ":"), ("grok_step", "--")):
        if summary and summary.get(key):
            ax.axvline(summary[key], color="grey", linestyle=style, label=f"{key.split('_')[0]} @ {summary[key]}")
    plateau = plateau_span(summary)
    if plateau:
        fit, grok = plateau
        ax.axvspan(fit, grok, color="gold", alpha=0.18, label="plateau: every training fact memorised, test not yet")
        title = f"{title}\nmemorised at step {fit:,}, generalised at {grok:,}: grok / fit = {grok / fit:.1f}"
    ax.set(xscale="log", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    (lower if diagnosed else ax).set_xlabel("optimisation step (log)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save(fig, out)


def plateau_span(summary: dict | None) -> tuple[int, int] | None:
    """(fit step, grok step) when the run memorised its training data before it generalised, else None."""
    fit, grok = (summary or {}).get("fit_step"), (summary or {}).get("grok_step")
    return (fit, grok) if fit and grok and grok > fit else None


def draw_diagnostics(ax, points: list[dict], summary: dict | None) -> None:
    """Collapse fraction and gradient–weight cosine (left axis, -1..1), weight norm (right axis)."""
    for key, (color, label) in DIAGNOSTICS.items():
        steps = [r["step"] for r in points if key in r]
        if steps:
            ax.plot(steps, [r[key] for r in points if key in r], color=color, linewidth=1, marker=".", ms=3,
                    label=label)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(ylim=(-1.05, 1.05), ylabel="fraction / cosine")
    norm_key = next((k for k in WEIGHT_NORMS if any(k in r for r in points)), None)
    if norm_key:
        steps = [r["step"] for r in points if norm_key in r]
        norm_ax = ax.twinx()
        what = "weight matrices' norm" if norm_key == WEIGHT_NORMS[0] else "weight norm"
        norm_ax.plot(steps, [r[norm_key] for r in points if norm_key in r], color="black", linewidth=1,
                     linestyle="--", label=f"{what} (right axis)")
        norm_ax.set_ylabel("L2 norm")
        lines = ax.get_legend_handles_labels()[0] + norm_ax.get_legend_handles_labels()[0]
        ax.legend(handles=lines, loc="lower left", fontsize=7)
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7)
    for key, style in (("fit_step", ":"), ("grok_step", "--")):
        if summary and summary.get(key):
            ax.axvline(summary[key], color="grey", linestyle=style)
    if plateau_span(summary):
        ax.axvspan(*plateau_span(summary), color="gold", alpha=0.18)
    ax.grid(alpha=0.3)


def run_accuracy_figure(run_dir: Path, summary: dict, title: str | None = None) -> Path:
    """`accuracy.png` of a finished run, drawn from its own metrics.jsonl and summary."""
    rows = runs.read_metrics(run_dir)
    return accuracy_curves(rows, summary["roles"], run_dir / runs.ACCURACY_FIGURE, title or run_dir.name, summary)
