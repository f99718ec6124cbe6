"""Run an analysis method over every checkpoint of a run (`groklab analyze RUN --method NAME`).

The method (an entry of `groklab.analysis.methods.METHODS`) measures one checkpoint; this loop picks the rows
once, loads each checkpoint in turn, and writes `analysis/<method>-<split>.json` and the method's figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from groklab import checkpoint, runs
from groklab.analysis import methods
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.tasks.dataset import Split


def pick_rows(split: Split, examples: int) -> Split:
    """A fixed random subset (seed 0) of at most `examples` rows, in their order: the same at every checkpoint."""
    pick = np.random.default_rng(0).permutation(len(split))[: min(examples, len(split))]
    return split.take(np.sort(pick))


def analyze(
    run_dir: Path, method: str, split: str | None, examples: int, progress: bool = True, steps: list[int] | None = None
) -> Path:
    """`method` on `examples` rows of probe `split` (default: the method's) at every checkpoint (or at those of
    `steps`: a quicker look); returns the JSON's path."""
    entry = methods.get(method)
    cfg, data = runs.open_run(run_dir)
    split = split or entry.default_split(data)
    if split not in data.probes:
        raise UserError(f"--split {split!r} is not a probe of this run; choose one of {', '.join(data.probes)}")
    saved = runs.list_steps(run_dir)
    if steps is not None and set(steps) - set(saved):
        raise UserError(f"{run_dir}: no checkpoint at step {sorted(set(steps) - set(saved))[0]}; it has {saved}")
    steps = saved if steps is None else sorted(set(steps))
    if not steps:
        raise UserError(f"{run_dir}: no checkpoints to analyse; train it first (`groklab train`)")
    rows = pick_rows(data.probes[split], examples)
    measure = methods.load(entry.prepare)(data, rows)
    device = torch.device("cpu")
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).to(device)
    results = []
    for step in tqdm(steps, desc=method, unit="ckpt", disable=not progress):
        checkpoint.load(run_dir, step, model)
        model.eval()
        results.append({"step": step, **measure.at_checkpoint(model, device)})
    analysis = {
        "method": method,
        "split": split,
        "examples": len(rows),
        "examples_asked": examples,
        "task": data.task,
        "depth": cfg.model.depth,  # layers deep: states S[0..depth] (analyses before model.loops wrote n_layers)
        "loops": cfg.model.loops,
        **measure.about,
        "checkpoints": results,
    }
    out = runs.analysis_file(run_dir, method, split)
    out.parent.mkdir(exist_ok=True)
    runs.write_json(out, analysis)
    draw_figures(entry, analysis, run_dir)
    return out


def draw_figures(entry: methods.Method, analysis: dict, run_dir: Path) -> list[Path]:
    """The method's figures, beside its JSON, from the JSON and the run's own metrics and summary."""
    metrics, summary = runs.read_metrics(run_dir), runs.read_summary(run_dir) or {}
    paths = []
    for suffix, figure in entry.figures:
        path = runs.analysis_file(run_dir, entry.name, analysis["split"], suffix)
        paths.append(methods.load(figure)(analysis, metrics, summary, path))
    return paths
