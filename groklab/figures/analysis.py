"""The figures of each analysis method, drawn from its JSON (`analysis/<method>-<split>.json`) and the run's
metrics and summary. Every function here has the signature the method table names
(`groklab.analysis.methods`): figure(analysis, metrics, summary, path) -> path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from groklab.figures import plt, save


def depth(analysis: dict) -> int:
    """Layers the analysis read (states S[0..depth]); analyses written before `model.loops` call it n_layers."""
    return analysis["depth"] if "depth" in analysis else analysis["n_layers"]


def accuracy_on_twin_axis(ax, metrics: list[dict], split: str, style: str, label: str) -> None:
    """The split's logged accuracy in black on a second y axis of `ax`, so an analysis curve reads against the
    moment the run groks."""
    twin = ax.twinx()
    key = f"{split}/acc"
    points = [(r["step"], r[key]) for r in metrics if key in r and r["step"] > 0]
    if points:
        twin.plot(*zip(*points, strict=True), color="black", linestyle=style, linewidth=1, label=key)
    twin.set(ylim=(-0.02, 1.02), ylabel=label)


def logit_lens_curves(analysis: dict, metrics: list[dict], summary: dict, path: Path) -> Path:
    """MRR of each target token per layer against training step (one panel per target), with the split's
    accuracy on a second axis: does the bridge become decodable in a middle layer as the run groks?"""
    checkpoints = analysis["checkpoints"]
    targets = list(checkpoints[-1]["targets"]) if checkpoints else []
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(4.5 * max(1, len(targets)), 3.6), squeeze=False)
    steps = [c["step"] for c in checkpoints]
    for ax, target in zip(axes[0], targets, strict=False):
        n_states = depth(analysis) + 1
        cmap = plt.get_cmap("viridis", n_states)
        for layer in range(n_states):
            mrr = [c["targets"].get(target, {}).get("mrr", [float("nan")] * n_states)[layer] for c in checkpoints]
            ax.plot(steps, mrr, color=cmap(layer), marker=".", label=f"after {layer} blocks")
        accuracy_on_twin_axis(ax, metrics, analysis["split"], "--", f"{analysis['split']} accuracy (dashed)")
        ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="optimisation step (log)", ylabel="MRR", title=target)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"logit lens on {analysis['split']} ({analysis['examples']} examples)")
    fig.tight_layout()
    return save(fig, path)


def value_probe_curves(analysis: dict, metrics: list[dict], summary: dict, path: Path) -> Path:
    """R² of the value probe against training step, one panel per reading (at e1, at e2, and the atomic-fact
    control), a colour per layer: solid for held-out ID keys, dashed for OOD keys; the split's accuracy in black
    on a second axis. A model that retrieves values for OOD entities has both lines high at e1 and e2; a ranking
    shortcut only the solid ones, while the control shows the OOD values are stored in the atomic context."""
    checkpoints = analysis["checkpoints"]
    names = list(checkpoints[-1]["probe"]) if checkpoints else []
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.6 * max(1, len(names)), 3.9), squeeze=False)
    steps = [c["step"] for c in checkpoints]
    n_states = depth(analysis) + 1
    cmap = plt.get_cmap("viridis", n_states)
    for ax, name in zip(axes[0], names, strict=False):
        for layer in range(n_states):
            for group, style in (("id_heldout", "-"), ("ood", "--")):
                r2 = [c["probe"][name][f"r2_{group}"][layer] for c in checkpoints]
                label = f"after {layer} blocks" if group == "id_heldout" else None
                ax.plot(steps, r2, color=cmap(layer), linestyle=style, marker=".", label=label)
        accuracy_on_twin_axis(ax, metrics, analysis["split"], "-", f"{analysis['split']} acc (black)")
        ax.axhline(0, color="grey", linewidth=0.8)
        n = analysis["n_rows"][name]
        where = "atomic facts, at the attribute" if name == "atomic" else f"comparisons, at {name}"
        ax.set(xscale="log", ylim=(-0.5, 1.02), xlabel="optimisation step (log)", ylabel="R² of the value",
               title=f"{where} (position {analysis['positions'][name]})\n"
                     f"fit {n['fit']}, held-out ID {n['id_heldout']}, OOD {n['ood']} rows")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle("value probe: solid = held-out ID keys, dashed = OOD keys", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save(fig, path)


def nearest_checkpoint(checkpoints: list[dict], step: int) -> dict:
    """The checkpoint closest to `step` on a log scale (checkpoints are log-spaced)."""
    return min(checkpoints, key=lambda c: abs(math.log(max(c["step"], 1)) - math.log(max(step, 1))))


def causal_tracing_heatmaps(analysis: dict, metrics: list[dict], summary: dict, path: Path) -> Path:
    """Causal strength over (layer, position) at the fit step, at the grok step (when there is one) and at the
    end, and end − fit: the shape of Wang et al.'s Fig. 4. Each column traces its own token's perturbation;
    columns are labelled with the JSON's `position_names` (every input position, e.g. attribute <q> e1 <mask> e2)."""
    checkpoints = analysis["checkpoints"]
    fit = nearest_checkpoint(checkpoints, summary.get("fit_step") or checkpoints[0]["step"])
    panels = [("fit", fit)]
    if summary.get("grok_step"):
        panels.append(("grok", nearest_checkpoint(checkpoints, summary["grok_step"])))
    panels.append(("end", checkpoints[-1]))
    grids = [(f"{label}: step {c['step']:,}", np.asarray(c["strength"])) for label, c in panels]
    grids.append(("end − fit", grids[-1][1] - grids[0][1]))
    n_states, n_pos = grids[0][1].shape
    names = analysis.get("position_names") or list(range(n_pos))  # older JSON: position numbers
    width = max(2.6, 0.8 * n_pos + 0.6)  # per panel: room for a label under each of n_pos columns
    fig, axes = plt.subplots(1, len(grids), figsize=(width * len(grids) + 1, 0.45 * n_states + 2), squeeze=False)
    for i, (ax, (title, grid)) in enumerate(zip(axes[0], grids, strict=True)):
        diff = i == len(grids) - 1  # the last panel is the difference end − fit
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdBu_r" if diff else "viridis",
                          vmin=-1 if diff else 0, vmax=1)
        for (i, q), v in np.ndenumerate(grid):
            ax.text(q, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if abs(v) > 0.5 else "k")
        ax.set_xticks(range(n_pos), names, rotation=30 if n_pos > 3 else 0, ha="right" if n_pos > 3 else "center")
        ax.set_yticks(range(n_states))
        ax.set(title=title, xlabel="position (its own token perturbed)", ylabel="state after i blocks")
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(f"causal tracing on {analysis['split']} ({analysis['examples']} examples): "
                 "fraction of predictions changed by patching S[i, position]")
    fig.tight_layout()
    return save(fig, path)


def causal_tracing_curves(analysis: dict, metrics: list[dict], summary: dict, path: Path) -> Path:
    """Causal strength of each intermediate state S[i, q] (0 < i < n_layers) against training step, one panel per
    perturbed token, with the split's accuracy dashed: does the information route change as the run groks
    (e.g. the head's effect moving from S[i, r2] to the bridge state S[i, r1])?"""
    checkpoints = analysis["checkpoints"]
    perturbed = list(checkpoints[-1]["perturbed"])
    steps = [c["step"] for c in checkpoints]
    n_layers = depth(analysis)
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(perturbed), figsize=(4.6 * len(perturbed), 3.8), squeeze=False)
    curves = {}  # the traced split's accuracy, and the ID test accuracy that shows the grokking
    test_id = summary.get("roles", {}).get("test_id", "test_inferred_id")
    for key, style in ((f"{analysis['split']}/acc", "-"), (f"{test_id}/acc", "--")):
        points = [(r["step"], r[key]) for r in metrics if key in r and r["step"] > 0]
        if points and key not in curves:
            curves[key] = (points, style)
    cmap = plt.get_cmap("viridis", n_layers + 1)
    for ax, name in zip(axes[0], perturbed, strict=True):
        position = checkpoints[-1]["perturbed"][name]["position"]
        n_pos = len(checkpoints[-1]["perturbed"][name]["strength"][0])
        for q in range(position, n_pos):
            for i in range(1, n_layers):
                ys = [c["perturbed"][name]["strength"][i][q] for c in checkpoints]
                ax.plot(steps, ys, color=cmap(i), linestyle=styles[(q - position) % len(styles)], marker=".",
                        markersize=3, label=f"S[{i}, pos {q}]")
        for key, (points, style) in curves.items():
            ax.plot(*zip(*points, strict=True), color="black", linestyle=style, linewidth=2, alpha=0.35, label=key)
        ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="optimisation step (log)", ylabel="causal strength",
               title=f"{name} (position {position}) perturbed")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.suptitle(f"causal tracing on {analysis['split']}: strength of intermediate states against step")
    fig.tight_layout()
    return save(fig, path)


def tree_projection_curves(analysis: dict, metrics: list[dict], summary: dict, path: Path) -> Path:
    """t_score and parse F1 of the tree projections against training step, with every accuracy curve of the
    run dashed on a second axis: does the model become tree-like as it groks (Murty et al. 2023, Fig. 5)?"""
    checkpoints = analysis["checkpoints"]
    steps = [c["step"] for c in checkpoints]
    accuracies = sorted({k for r in metrics for k in r if k.endswith("/acc")})
    panels = [
        ("t_score", "t_score (E_random SCI − SCI of the projection)", None),
        ("t_score_nodes", "t_score_nodes (per-node gain over random splits)", None),
        ("parse_f1", "parse F1 against the gold trees", (-0.02, 1.02)),
    ]
    panels = [p for p in panels if any(c.get(p[0]) is not None for c in checkpoints)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (key, label, ylim) in zip(axes[0], panels, strict=True):
        ys = [np.nan if c.get(key) is None else c[key] for c in checkpoints]
        ax.plot(steps, ys, color="tab:purple", marker=".", label=key)
        if key == "parse_f1":
            for side, style in (("f1_left", ":"), ("f1_right", "-.")):
                base = [np.nan if c.get(side) is None else c[side] for c in checkpoints]
                ax.plot(steps, base, color="grey", linestyle=style, label=f"{side.removeprefix('f1_')}-branching")
        twin = ax.twinx()
        for name, style in zip(accuracies, ["--", ":", "-.", (0, (5, 1))] * len(accuracies), strict=False):
            points = [(r["step"], r[name]) for r in metrics if name in r and r["step"] > 0]
            if points:
                twin.plot(
                    *zip(*points, strict=True), color="black", linestyle=style, linewidth=1, alpha=0.5, label=name
                )
        twin.set(ylim=(-0.02, 1.02), ylabel="accuracy (black)")
        ax.set(xscale="log", xlabel="optimisation step (log)", ylabel=label, ylim=ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        twin.legend(fontsize=6, loc="lower right")
    last = checkpoints[-1] if checkpoints else {}
    fig.suptitle(
        f"tree projections on {analysis['split']} ({analysis['examples']} examples, states after "
        f"{last.get('layer')} blocks, {last.get('decoder')} decoder)"
    )
    fig.tight_layout()
    return save(fig, path)
