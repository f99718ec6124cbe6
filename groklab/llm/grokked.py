"""The grokked model's side of the comparison: its answer to each query, from the run's newest checkpoint that
verifies, computed exactly as training evaluates a probe (the argmax at the answer position), so that the LLM
and the grokked model are scored on the same queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from groklab import checkpoint, runs
from groklab.errors import UserError
from groklab.metrics import DeviceSplit
from groklab.model import Transformer
from groklab.tasks.dataset import Split, TaskData

BATCH = 1024


@torch.no_grad()
def predict(run_dir: Path, data: TaskData, queries: Split) -> dict:
    """{"step": the checkpoint's step, "predicted": answer token id per query}."""
    step = checkpoint.latest_good(run_dir)
    if step is None:
        raise UserError(f"{run_dir} has no checkpoint that verifies; train it first, or pass its dataset folder")
    cfg = runs.read_config(run_dir)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
    checkpoint.load(run_dir, step, model)
    rows = DeviceSplit.from_split(queries, data.n_ctx, torch.device("cpu"))
    predicted = [model(part.tokens, part.positions).argmax(-1)
                 for part in (rows.rows(slice(i, i + BATCH)) for i in range(0, len(rows), BATCH))]
    return {"step": step, "predicted": torch.cat(predicted).numpy() if predicted else np.zeros(0, dtype=np.int64)}
