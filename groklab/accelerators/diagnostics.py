"""Cheap measurements of what the accelerators act on, logged at every evaluation (Prieto et al., ICLR 2025).

- `weights/norm`: global L2 norm of all parameters (each shared parameter once). Weight decay shrinks it,
  naive loss minimisation grows it. `weights/matrix_norm`: the same over weight matrices and embeddings only
  (at init the LayerNorm gains, all ones, dominate `weights/norm` of a small model).
- `train/softmax_collapse`: fraction of a fixed sample of the train probe whose answer probability is exactly 1
  under float32 softmax, so that their float32 cross-entropy gradient is zero. The forward runs in float32
  (no autocast) and the answer is the probe's answer token (for sequence tasks the decisive token).
- `train/grad_weight_cos`: cosine between the loss's gradient (raw: before the Grokfast filter, a gradient
  transform or clipping) of the update just before the evaluation and the weights, each flattened over all
  parameters. Near −1 the gradient step only scales the weights up: naive loss minimisation, which ⊥Grad removes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from groklab.metrics import DeviceSplit
from groklab.tasks.dataset import Split

COLLAPSE_ROWS = 1024  # sample of the train probe for train/softmax_collapse: one eval batch on a CPU
SAMPLE_SEED = 0  # the sample is fixed for the run (and equal across runs of the same data)


def collapse_sample(probe: Split, n_ctx: int, device: torch.device) -> DeviceSplit:
    """A fixed random sample of up to COLLAPSE_ROWS rows of the train probe, on the device."""
    rows = DeviceSplit.from_split(probe, n_ctx, device)
    pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SAMPLE_SEED))[:COLLAPSE_ROWS]
    return rows.rows(pick.sort().values.to(device))


@torch.no_grad()
def softmax_collapse(model: nn.Module, rows: DeviceSplit) -> float:
    """Fraction of `rows` whose answer has float32 softmax probability exactly 1."""
    was_training = model.training
    model.eval()
    logits = model(rows.tokens, rows.positions).float()
    model.train(was_training)
    answer_prob = logits.softmax(-1).gather(1, rows.answers[:, None])
    return float((answer_prob == 1).double().mean())


@torch.no_grad()
def weight_norm(params: list[nn.Parameter]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.detach().double().norm() for p in params])))


@torch.no_grad()
def grad_weight_cosine(params: list[nn.Parameter]) -> Tensor:
    """cos(gradient, weights) over every parameter with a gradient, as a float64 tensor (no host sync)."""
    pairs = [(p.grad.double().flatten(), p.detach().double().flatten()) for p in params if p.grad is not None]
    dot = sum(torch.dot(g, w) for g, w in pairs)
    grad_sq = sum(torch.dot(g, g) for g, _ in pairs)
    weight_sq = sum(torch.dot(w, w) for _, w in pairs)
    return dot / (grad_sq * weight_sq).sqrt().clamp(min=1e-300)
