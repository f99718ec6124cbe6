"""Figures from run directories only (never from a live model)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen needed
import matplotlib.pyplot as plt  # noqa: E402

ROLE_STYLE = {
    "train": ("tab:blue", "train"),
    "test_id": ("tab:green", "test (ID)"),
    "test_ood": ("tab:red", "test (OOD)"),
}


def accuracy_curves(
    rows: list[dict], roles: dict[str, str], out: Path, title: str = "", summary: dict | None = None
) -> Path:
    """Train / test_id / test_ood accuracy against step, log x axis, with fit and grok steps marked."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    points = [r for r in rows if r["step"] > 0]
    for role, (color, label) in ROLE_STYLE.items():
        if role in roles:
            key = f"{roles[role]}/acc"
            ax.plot(
                [r["step"] for r in points],
                [r[key] for r in points],
                color=color,
                marker=".",
                label=f"{label}: {roles[role]}",
            )
    shown = {roles[r] for r in ROLE_STYLE if r in roles}
    for name in sorted({k.removesuffix("/acc") for r in points for k in r if k.endswith("/acc")} - shown):
        ax.plot([r["step"] for r in points], [r[f"{name}/acc"] for r in points], linewidth=0.8, alpha=0.5,
                linestyle="--", label=name)
    for key, style in (("fit_step", ":"), ("grok_step", "--")):
        if summary and summary.get(key):
            ax.axvline(
                summary[key], color="grey", linestyle=style, label=f"{key.split('_')[0]} @ {summary[key]}"
            )
    ax.set(xscale="log", xlabel="optimisation step (log)", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
