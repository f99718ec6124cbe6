"""Run an analysis over every checkpoint of a run and write `analysis/<method>-<split>.json` plus a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from groklab import checkpoint, runs
from groklab.analysis.logit_lens import logit_lens
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.train import open_run

METHODS = {"logit-lens": logit_lens}


def analyze(run_dir: Path, method: str, split: str, examples: int, progress: bool = True) -> Path:
    """`method` on `examples` rows of probe `split` at every checkpoint; returns the JSON path."""
    cfg, data = open_run(run_dir)
    if split not in data.probes:
        raise UserError(f"--split {split!r} is not a probe of this run; choose one of {', '.join(data.probes)}")
    steps = checkpoint.list_steps(run_dir)
    if not steps:
        raise UserError(f"{run_dir}: no checkpoints to analyse; train it first (`groklab train`)")
    probe = data.probes[split]
    pick = np.random.default_rng(0).permutation(len(probe))[: min(examples, len(probe))]
    rows = probe.take(np.sort(pick))
    device = torch.device("cpu")
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).to(device)
    results = []
    for step in tqdm(steps, desc=method, unit="ckpt", disable=not progress):
        checkpoint.load(run_dir, step, model)
        model.eval()
        results.append({"step": step, "roles": METHODS[method](model, rows, data.task, device)})
    out = run_dir / "analysis" / f"{method}-{split}.json"
    out.parent.mkdir(exist_ok=True)
    analysis = {
        "method": method,
        "split": split,
        "examples": len(rows),
        "task": data.task,
        "n_layers": cfg.model.n_layers,
        "checkpoints": results,
    }
    runs.write_json(out, analysis)
    from groklab.plots import logit_lens_curves

    logit_lens_curves(analysis, runs.read_metrics(run_dir), out.with_suffix(".png"))
    return out
