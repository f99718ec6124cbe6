"""Logit lens: decode every layer's residual stream with the final LayerNorm and unembedding, and measure
the rank and reciprocal rank of a target token (science.md §6; targets: `groklab.analysis.targets`). Works for
any depth and for looped models (every loop's states), because states are read by depth through hook names."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.methods import Measure
from groklab.analysis.targets import ANSWER_POSITION, TARGETS, targets
from groklab.errors import UserError
from groklab.hooks import resid_name, run_with_cache
from groklab.model import Transformer
from groklab.tasks.dataset import ABSENT, Split, TaskData


def ranks(logits: Tensor, targets: Tensor) -> Tensor:
    """1-based rank of each row's target among its logits (1 = top prediction; ties count against it)."""
    target_logit = logits.gather(1, targets[:, None])
    return (logits > target_logit).sum(1) + 1


def decode(model: Transformer, state: Tensor) -> Tensor:
    """Logits the model would output if `state` [n, d_model] were its final residual stream."""
    return model.unembed(model.ln_final(state))


@torch.no_grad()
def logit_lens(model: Transformer, split: Split, task: str, device: torch.device) -> dict[str, dict]:
    """For each target of `task`: per layer i (residual stream after i layers, i = 0..depth: every loop) the mean
    reciprocal rank, top-1 fraction and median rank of the target's token, over the rows of `split`."""
    if task not in TARGETS:
        raise UserError(f"the logit lens knows the targets of {', '.join(TARGETS)} facts, not {task!r}")
    tokens = torch.as_tensor(split.tokens, device=device)
    last = torch.as_tensor(split.lengths, device=device) - 1
    rows = torch.arange(len(tokens), device=device)
    names = [resid_name(i) for i in range(model.cfg.depth + 1)]
    _, cache = run_with_cache(model, tokens, names)
    out = {}
    for target_name, (field, position) in targets(task, split).items():
        wanted = np.asarray(split.fields[field])
        keep = torch.as_tensor(wanted != ABSENT, device=device)  # rows whose facts have this field
        if not bool(keep.any()):
            continue
        pos = last if position == ANSWER_POSITION else torch.full_like(last, position)
        target = torch.as_tensor(wanted, device=device)[keep]
        per_layer = [ranks(decode(model, cache[name][rows, pos][keep]).float(), target) for name in names]
        r = torch.stack(per_layer).double()  # [layers + 1, n]
        out[target_name] = {
            "mrr": (1 / r).mean(1).tolist(),
            "top1": (r == 1).double().mean(1).tolist(),
            "median_rank": r.median(1).values.tolist(),
            "n": int(keep.sum()),
        }
    return out


def prepare(data: TaskData, rows: Split) -> Measure:
    """The logit lens at every checkpoint, over the same rows (the analysis JSON's "targets")."""
    return Measure(lambda model, device: {"targets": logit_lens(model, rows, data.task, device)})
