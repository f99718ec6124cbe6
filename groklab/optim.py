"""Optimiser pieces: AdamW with the paper's groups, Muon, and the LR schedule (with Grokfast's lr scale).

Grokfast's gradient filters live with the other gradient transforms in `groklab/accelerators/`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from groklab.accelerators import muon
from groklab.config import AcceleratorConfig, FilterConfig, TrainConfig
from groklab.model import param_groups

Optimizer = torch.optim.Optimizer | muon.MuonWithAdamW


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, lr_scale: float = 1.0, accelerator: AcceleratorConfig | None = None
) -> Optimizer:
    """The optimiser train.optimizer names (OPTIMIZERS), its lrs multiplied by `lr_scale` (see `lr_scale`);
    `accelerator`: the run's [accelerator] hyper-parameters (defaults if None)."""
    return OPTIMIZERS[cfg.optimizer](model, cfg, accelerator or AcceleratorConfig(), lr_scale)


def make_adam(
    kind: type[torch.optim.Optimizer],
    model: nn.Module,
    cfg: TrainConfig,
    accelerator: AcceleratorConfig,
    lr_scale: float,
    skip: list | None = None,
) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, Wang et al.) or Adam (weight decay as an L2 term in the gradient, as in
    Grokfast's and Power et al.'s code) over the parameters not in `skip`. Biases and LayerNorm are not decayed
    unless train.decay_all."""
    # fused kernels exist for CUDA and CPU (one pass over each tensor instead of a dozen foreach sweeps)
    fused = all(p.device.type in ("cuda", "cpu") for p in model.parameters())
    groups = (
        [{"params": list(model.parameters()), "weight_decay": cfg.weight_decay}]
        if cfg.decay_all
        else param_groups(model, cfg.weight_decay)
    )
    skipped = {id(p) for p in skip or []}
    groups = [g | {"params": [p for p in g["params"] if id(p) not in skipped]} for g in groups]
    return kind(
        [g for g in groups if g["params"]],
        lr=cfg.lr * lr_scale,
        betas=cfg.betas,
        eps=cfg.adam_eps,
        fused=fused or None,
        foreach=None if fused else True,
    )


def make_muon(
    model: nn.Module, cfg: TrainConfig, accelerator: AcceleratorConfig, lr_scale: float
) -> muon.MuonWithAdamW:
    """Muon (accelerator.muon_lr) on the blocks' matrices, AdamW (train.lr) on the rest: accelerators/muon.py."""
    matrices = muon.block_matrices(model)
    adamw = make_adam(torch.optim.AdamW, model, cfg, accelerator, lr_scale, skip=matrices)
    return muon.MuonWithAdamW(matrices, adamw, lr=accelerator.muon_lr * lr_scale, weight_decay=cfg.weight_decay)


# train.optimizer: name -> make(model, train config, accelerator config, lr scale)
OPTIMIZERS: dict[str, Callable[[nn.Module, TrainConfig, AcceleratorConfig, float], Optimizer]] = {
    "adamw": partial(make_adam, torch.optim.AdamW),
    "adam": partial(make_adam, torch.optim.Adam),
    "muon": make_muon,
}


def lr_scale(cfg: FilterConfig) -> float:
    """filter.normalize_lr: 1 / (1 + λ) with a Grokfast filter, else 1. A filter adds λ times a slow average of
    the gradient, so a steady gradient g reaches the optimiser as (1 + λ)·g: under SGD a (1 + λ)-times larger
    step. Dividing the lr by 1 + λ leaves the filter only its change of direction. Adam(W) and Muon are
    (nearly) invariant to a uniform gradient scale, so under them the division makes the steps smaller than
    an unfiltered run's: a control to read with that in mind."""
    return 1 / (1 + cfg.amplify) if cfg.normalize_lr and cfg.kind != "none" else 1.0


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier on cfg.lr for update number `step` (0-based): linear warm-up, then constant or cosine (to
    min_lr_ratio at train.decay_steps, or at the run's end when it is 0; constant after it).
    The warm-up reaches lr at update warmup_steps − 1, or (train.warmup_from_zero) starts at lr 0 and reaches
    it at update warmup_steps, as torch's LambdaLR(lambda update: update / warmup) does in Grokfast's code."""
    if step < cfg.warmup_steps:
        return (step if cfg.warmup_from_zero else step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, (cfg.decay_steps or cfg.steps) - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
