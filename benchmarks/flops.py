"""Model FLOPs per training step, and the machine's matrix-multiply peak (for MFU = achieved / peak).

A multiply-add is 2 FLOPs. Per sequence of T computed positions (our batches are padded to n_ctx, and every
padded position is computed), with d = d_model, m = d_mlp, V = d_vocab, per layer *application* (a shared
block applied at two depths counts twice; parameter sharing saves memory, not FLOPs):

    projections and MLP   2·(4d² + 2dm)·T      Q, K, V (3d²), output (d²), MLP in and out (2dm): params per token
    attention             2·2·T²·d             scores Q·Kᵀ and the weighted sum of V, over the *full* T×T grid:
                                               `broadcast_attention` computes every pair and masks afterwards,
                                               so we do not halve for causality
    unembedding           2·d·V per scored position

Our fast path (`Block.forward_answer`) computes the last layer only partly: K and V at all T positions
(2·2d²·T), but Q, the output projection and the MLP at the answer position only (2·(2d² + 2dm)), one query
over T keys (2·2·T·d), and logits at one position (2·d·V). The "dense-equivalent" count is the plain
forward: every layer and the unembedding at all T positions (what a Hugging Face GPT-2 computes).

backward = 2 × forward (a gradient for both the input and the weight of every matmul), so a training step
is 3 × forward × batch. Not counted: LayerNorm, GELU, softmax, biases, the loss, the optimiser and the
Grokfast filter (all elementwise, O(params) or O(T·d)) and embedding look-ups (gathers).
"""

from __future__ import annotations

import time

import torch

from groklab.config import ModelConfig


def layer_flops(d: int, m: int, n_pos: int) -> dict[str, int]:
    """One layer over all `n_pos` positions of one sequence."""
    return {"matmul": 2 * (4 * d * d + 2 * d * m) * n_pos, "attention": 2 * 2 * n_pos * n_pos * d}


def answer_layer_flops(d: int, m: int, n_pos: int) -> dict[str, int]:
    """`Block.forward_answer`: K and V everywhere; Q, output, MLP and one query's attention at the answer."""
    return {"matmul": 2 * 2 * d * d * n_pos + 2 * (2 * d * d + 2 * d * m), "attention": 2 * 2 * n_pos * d}


def forward_flops(cfg: ModelConfig, d_vocab: int, n_pos: int, answer_only: bool) -> dict[str, int]:
    """Forward FLOPs for one sequence by part: matmul (projections, MLP), attention, unembed."""
    d, m = cfg.d_model, cfg.d_mlp
    dense_layers = cfg.depth - 1 if answer_only else cfg.depth
    parts = [layer_flops(d, m, n_pos)] * dense_layers
    if answer_only:
        parts.append(answer_layer_flops(d, m, n_pos))
    total = {key: sum(p[key] for p in parts) for key in ("matmul", "attention")}
    total["unembed"] = 2 * d * d_vocab * (1 if answer_only else n_pos)
    return total


def step_flops(cfg: ModelConfig, d_vocab: int, n_pos: int, batch: int, answer_only: bool) -> int:
    """FLOPs of one training step (forward + backward = 3 × forward) on `batch` sequences."""
    return 3 * batch * sum(forward_flops(cfg, d_vocab, n_pos, answer_only).values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of a large square matmul: 2048³ on a CPU, 8192³ (×10 per timing) on a GPU."""
    n, inner = (2048, 1) if device.type == "cpu" else (8192, 10)
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        tic = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        sync(device)
        best = min(best, (time.perf_counter() - tic) / inner)
    return 2 * n**3 / best


def gemm_peaks(device: torch.device, fast_cpu_bf16: bool) -> dict[str, float]:
    """fp32 peak everywhere; bf16 on a GPU, and on a CPU only where it has native bf16 kernels."""
    peaks = {"fp32": gemm_peak(device, torch.float32)}
    if device.type != "cpu" or fast_cpu_bf16:
        peaks["bf16"] = gemm_peak(device, torch.bfloat16)
    return peaks
