"""StableMax cross-entropy (Prieto et al., ICLR 2025, "Grokking at the edge of numerical stability", §4).

Softmax's exponential lets a fitted model push its answer's probability to exactly 1 in float32 ("softmax
collapse"): the loss and its gradient are then exactly 0 for that example and learning stops. StableMax
replaces exp by a function that grows only linearly for positive logits and decays like 1/|x| for negative ones:

    s(x) = x + 1        for x ≥ 0
    s(x) = 1 / (1 − x)  for x < 0,        StableMax(x)_i = s(x_i) / Σ_j s(x_j),   loss = −log StableMax(x)_answer

s is increasing, so the argmax (and accuracy) is that of the logits. Computed in float64, as our softmax loss
is (`metrics.answer_loss`); sequence tasks apply it to every target token. Probes' `<probe>/loss` stays softmax
cross-entropy so that runs with either training loss are compared on one scale; `train/loss` is StableMax's.

Checked (tests/test_accelerators.py): equal to the formula on hand-computed logits; where float32 softmax has
collapsed (gradient exactly 0), StableMax's float32 gradient is not 0; resuming a run is bit-exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def s(x: Tensor) -> Tensor:
    # clamp: the unused branch 1/(1 − x) must stay finite at x = 1, or its gradient turns the where() into NaN
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp(max=0)))


def log_stablemax(logits: Tensor) -> Tensor:
    """log StableMax over the last dimension, in the logits' dtype."""
    sx = s(logits)
    return sx.log() - sx.sum(-1, keepdim=True).log()


def stablemax_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean −log StableMax(logits)[target], in float64; logits [N, vocab], targets [N]."""
    return F.nll_loss(log_stablemax(logits.double()), targets)
