"""A curriculum's stages on one step axis: each stage's own training and grok probes in its colour, and, over
the later stages, the earlier stages' probes that they keep evaluating (`<stage>--<probe>`): forgetting."""

from __future__ import annotations

import math
from pathlib import Path

from groklab.figures import plt, save
from groklab.grokking import fit_probes, grok_probe
from groklab.runs import earlier_probe_key


def stage_offsets(stages: list[tuple[str, list[dict], dict]]) -> list[int]:
    """Global step at which each stage starts: the steps the stages before it trained (their last logged step)."""
    offsets, total = [], 0
    for _, rows, _ in stages:
        offsets.append(total)
        total += rows[-1]["step"] if rows else 0
    return offsets


def curriculum_figure(stages: list[tuple[str, list[dict], dict]], out: Path, title: str = "") -> Path:
    """`stages`: (name, metrics rows, roles) in order. Linear step axis (the stages are laid end to end); a stage's
    train probe dashed, its grok probe solid, and the same two faded where later stages evaluate them (forgetting)."""
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    offsets = stage_offsets(stages)
    colour = {name: f"C{i}" for i, (name, _, _) in enumerate(stages)}
    # per stage: its train probe (dashed) and grok probe (solid), the two lines followed across later stages
    drawn = {name: {fit_probes(roles)[0]: ("--", "train"), grok_probe(roles): ("-", "grok probe")}
             for name, _, roles in stages}
    for i, ((name, rows, _), offset) in enumerate(zip(stages, offsets, strict=True)):
        steps = [offset + r["step"] for r in rows]
        for probe, (style, what) in drawn[name].items():
            ax.plot(steps, [r.get(f"{probe}/acc", math.nan) for r in rows], color=colour[name], linestyle=style,
                    linewidth=2.0 if style == "-" else 1.2, label=f"{name}: {probe} ({what})")
        for earlier, _, _ in stages[:i]:
            for probe, (style, _) in drawn[earlier].items():
                if key := earlier_probe_key(rows, earlier, probe):
                    ax.plot(steps, [r.get(key, math.nan) for r in rows], color=colour[earlier], linestyle=style,
                            linewidth=0.9, alpha=0.5)
        ax.axvline(offset, color="grey", linewidth=0.8)
        ax.text(offset, 1.04, f" {name}", fontsize=8, va="bottom", color=colour[name])
    ax.plot([], [], color="grey", alpha=0.5, linewidth=0.9, label="faded: a stage's probe evaluated in later stages")
    ax.set(xlabel="optimisation step (all stages, end to end)", ylabel="accuracy", ylim=(-0.02, 1.1))
    ax.set_title(title, pad=16)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    fig.tight_layout()
    return save(fig, out)
