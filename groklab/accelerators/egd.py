"""Egalitarian gradient descent (Pasand & Dohmatob, ICLR 2026).

Grokking is slow because the gradient of a weight matrix moves along a few large singular directions fast and
along the small ones (the ones that generalise) slowly. EGD gives every singular direction the same speed:

    G = U S Vᵀ  →  G ← U Vᵀ      ( = (G Gᵀ)^(-1/2) G, every non-zero singular value set to 1 )

for every 2-D parameter (attention and MLP matrices, embeddings and an untied unembedding); biases and
LayerNorm gains keep their gradients. We use an exact SVD (`torch.linalg.svd`, reduced) rather than Muon's
Newton–Schulz iteration, whose singular values land anywhere in ~[0.7, 1.2]: EGD's claim is exact equality.
Directions with a numerically zero singular value (s ≤ max(m, n)·eps·s_max, as `matrix_rank` decides) are
dropped, not inflated to 1: an embedding row no example in the batch touched keeps a zero gradient.

Cost, measured on the demo config (4 layers, d_model 64, vocab 121: 18 matrices; one thread, a shared 2-core
AVX-512 CPU, updates of the two runs interleaved): the SVDs take ~6 ms, and an update 41 ms instead of 32 (+26%).

Checked (tests/test_accelerators.py): every singular value of the output is 1; a zero gradient stays zero;
resuming a run is bit-exact.
"""

from __future__ import annotations

import torch

from groklab.accelerators.base import GradTransform


def orthogonalize(grad: torch.Tensor) -> torch.Tensor:
    """U Vᵀ of `grad` = U S Vᵀ, over its numerically non-zero singular values."""
    if grad.shape[0] < grad.shape[1]:  # LAPACK is ~1.5× faster on the tall shape
        return orthogonalize(grad.T).T
    u, s, vh = torch.linalg.svd(grad, full_matrices=False)
    tolerance = max(grad.shape) * torch.finfo(grad.dtype).eps * s[:1]
    return (u * (s > tolerance)) @ vh


class Egalitarian(GradTransform):
    """`train.grad_transform = "egd"`: each weight matrix's gradient replaced by U Vᵀ of its SVD."""

    @torch.no_grad()
    def __call__(self) -> None:
        for p in self.params.values():
            if p.grad is not None and p.ndim == 2:
                p.grad.copy_(orthogonalize(p.grad))
