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


def logit_lens_curves(analysis: dict, metrics: list[dict], path: Path) -> Path:
    """MRR of each role's token per layer against training step (one panel per role), with the split's
    accuracy on a second axis: does the bridge become decodable in a middle layer as the run groks?"""
    checkpoints = analysis["checkpoints"]
    roles = list(checkpoints[-1]["roles"]) if checkpoints else []
    fig, axes = plt.subplots(1, max(1, len(roles)), figsize=(4.5 * max(1, len(roles)), 3.6), squeeze=False)
    steps = [c["step"] for c in checkpoints]
    acc_key = f"{analysis['split']}/acc"
    for ax, role in zip(axes[0], roles, strict=False):
        n_states = analysis["n_layers"] + 1
        cmap = plt.get_cmap("viridis", n_states)
        for layer in range(n_states):
            mrr = [c["roles"].get(role, {}).get("mrr", [float("nan")] * n_states)[layer] for c in checkpoints]
            ax.plot(steps, mrr, color=cmap(layer), marker=".", label=f"after {layer} blocks")
        twin = ax.twinx()
        acc = [(r["step"], r[acc_key]) for r in metrics if acc_key in r and r["step"] > 0]
        if acc:
            twin.plot(*zip(*acc, strict=True), color="black", linestyle="--", linewidth=1, label=acc_key)
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel(f"{analysis['split']} accuracy (dashed)")
        ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="optimisation step (log)", ylabel="MRR", title=role)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"logit lens on {analysis['split']} ({analysis['examples']} examples)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
