"""Run an analysis over every checkpoint of a run and write `analysis/<method>-<split>.json` plus a figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from groklab import checkpoint, plots, runs
from groklab.analysis.causal_tracing import causal_tracing, plan_perturbations
from groklab.analysis.logit_lens import logit_lens
from groklab.analysis.tree_projection import tree_projection
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.tasks.dataset import Split, TaskData
from groklab.train import open_run

Measure = Callable[[Transformer, torch.device], dict]


def prepare_logit_lens(data: TaskData, rows: Split) -> Measure:
    return lambda model, device: {"roles": logit_lens(model, rows, data.task, device)}


def prepare_causal_tracing(data: TaskData, rows: Split) -> Measure:
    plans = plan_perturbations(data, rows)  # the same perturbed inputs at every checkpoint
    return lambda model, device: causal_tracing(model, rows, plans, device)


def prepare_tree_projection(data: TaskData, rows: Split) -> Measure:
    if "sentence_length" not in rows.fields:
        raise UserError(f"tree projections need sentences with a known length; {data.task!r} rows have none")
    return lambda model, device: tree_projection(model, rows, device, examples=len(rows), seed=0)


METHODS: dict[str, Callable[[TaskData, Split], Measure]] = {
    "logit-lens": prepare_logit_lens,
    "causal-tracing": prepare_causal_tracing,
    "tree-projection": prepare_tree_projection,
}
DEFAULT_SPLIT = {"logit-lens": "test_inferred_id", "causal-tracing": "train_inferred"}  # the paper's choices


def supports(method: str, task: str) -> bool:
    """Whether `method` knows `task`: the logit lens and causal tracing read the roles of knowledge-base facts,
    tree projections need sentences with gold trees (the sequence tasks)."""
    from groklab.analysis.roles import PERTURBED_TOKENS, TARGETS
    from groklab.tasks import SEQUENCE_TASKS

    known = {"logit-lens": TARGETS, "causal-tracing": PERTURBED_TOKENS, "tree-projection": SEQUENCE_TASKS}
    return task in known[method]


def default_split(method: str, data: TaskData) -> str:
    """The paper's split; tree projections use the generalisation split "gen" (Murty et al. 2023), else the
    run's ID test split."""
    if method == "tree-projection":
        return "gen" if "gen" in data.probes else data.roles["test_id"]
    return DEFAULT_SPLIT[method]


def analyze(run_dir: Path, method: str, split: str | None, examples: int, progress: bool = True) -> Path:
    """`method` on `examples` rows of probe `split` at every checkpoint; returns the JSON path."""
    if method not in METHODS:
        raise UserError(f"--method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    cfg, data = open_run(run_dir)
    split = split or default_split(method, data)
    if split not in data.probes:
        raise UserError(f"--split {split!r} is not a probe of this run; choose one of {', '.join(data.probes)}")
    steps = checkpoint.list_steps(run_dir)
    if not steps:
        raise UserError(f"{run_dir}: no checkpoints to analyse; train it first (`groklab train`)")
    probe = data.probes[split]
    pick = np.random.default_rng(0).permutation(len(probe))[: min(examples, len(probe))]
    rows = probe.take(np.sort(pick))
    measure = METHODS[method](data, rows)
    device = torch.device("cpu")
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).to(device)
    results = []
    for step in tqdm(steps, desc=method, unit="ckpt", disable=not progress):
        checkpoint.load(run_dir, step, model)
        model.eval()
        results.append({"step": step, **measure(model, device)})
    out = run_dir / "analysis" / f"{method}-{split}.json"
    out.parent.mkdir(exist_ok=True)
    analysis = {
        "method": method,
        "split": split,
        "examples": len(rows),
        "examples_asked": examples,
        "task": data.task,
        "n_layers": cfg.model.n_layers,
        "checkpoints": results,
    }
    runs.write_json(out, analysis)
    png = out.with_suffix(".png")
    if method == "logit-lens":
        plots.logit_lens_curves(analysis, runs.read_metrics(run_dir), png)
    elif method == "tree-projection":
        plots.tree_projection_curves(analysis, runs.read_metrics(run_dir), png.with_name(f"{png.stem}-curves.png"))
    else:
        summary_path = run_dir / "summary.json"
        summary = runs.read_json(summary_path) if summary_path.exists() else {}
        plots.causal_tracing_heatmaps(analysis, summary, png)
        plots.causal_tracing_curves(analysis, runs.read_metrics(run_dir), png.with_name(f"{png.stem}-curves.png"))
    return out
