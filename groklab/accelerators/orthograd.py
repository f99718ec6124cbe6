"""⊥Grad (Prieto et al., ICLR 2025, "Grokking at the edge of numerical stability", §5).

Late in training the gradient of a fitted model points mostly along the weights themselves: scaling the logits
up lowers the loss ("naive loss minimisation") until softmax collapses in floating point. ⊥Grad keeps only the
part of each weight tensor's gradient orthogonal to that tensor, rescaled to the gradient's own norm:

    g⊥ = g − (⟨w, g⟩ / ⟨w, w⟩)·w,      g ← g⊥ · ‖g‖ / ‖g⊥‖        (per parameter tensor, flattened)

Their ⊥AdamW applies it to every parameter before the AdamW step and groks without weight decay; here it runs
after the Grokfast filter and before clipping and the step, for any optimiser. A tensor of zeros (a bias at
initialisation) has no direction to remove and keeps its gradient.

Checked (tests/test_accelerators.py): the output is orthogonal to the weights and has the input's norm;
resuming a run is bit-exact.
"""

from __future__ import annotations

import torch

from groklab.accelerators.base import GradTransform

TINY = 1e-30  # guards 0/0 for zero weights or a gradient exactly along them (as in the authors' code)


class OrthoGrad(GradTransform):
    """`train.grad_transform = "orthograd"`: each tensor's gradient projected orthogonal to its weights."""

    @torch.no_grad()
    def __call__(self) -> None:
        for p in self.params.values():
            if p.grad is None:
                continue
            w, g = p.detach().reshape(-1), p.grad.reshape(-1)
            orthogonal = g - (torch.dot(w, g) / torch.dot(w, w).clamp(min=TINY)) * w
            p.grad.copy_((orthogonal * (g.norm() / orthogonal.norm().clamp(min=TINY))).view_as(p.grad))
