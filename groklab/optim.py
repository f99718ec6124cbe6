"""Optimiser pieces: AdamW with the paper's groups, the LR schedule, and Grokfast gradient filters.

Filters (Lee et al. 2024) act on each parameter's gradient after `backward()` and before clipping and the
optimiser step; the optimiser and its weight decay are untouched. Their state is part of every checkpoint,
so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from groklab.accelerators import muon
from groklab.config import FilterConfig, TrainConfig
from groklab.model import param_groups

Optimizer = torch.optim.Optimizer | muon.MuonWithAdamW


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr_scale: float = 1.0) -> Optimizer:
    """The optimiser train.optimizer names (OPTIMIZERS), its lrs multiplied by `lr_scale` (see `lr_scale`)."""
    return OPTIMIZERS[cfg.optimizer](model, cfg, lr_scale)


def make_adam(
    kind: type[torch.optim.Optimizer], model: nn.Module, cfg: TrainConfig, lr_scale: float, skip: list | None = None
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
        fused=fused or None,
        foreach=None if fused else True,
    )


def make_muon(model: nn.Module, cfg: TrainConfig, lr_scale: float) -> muon.MuonWithAdamW:
    """Muon (train.muon_lr) on the blocks' matrices, AdamW (train.lr) on the rest: accelerators/muon.py."""
    matrices = muon.block_matrices(model)
    adamw = make_adam(torch.optim.AdamW, model, cfg, lr_scale, skip=matrices)
    return muon.MuonWithAdamW(matrices, adamw, lr=cfg.muon_lr * lr_scale, weight_decay=cfg.weight_decay)


# train.optimizer: name -> make(model, train config, lr scale)
OPTIMIZERS: dict[str, Callable[[nn.Module, TrainConfig, float], Optimizer]] = {
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
    """Multiplier on cfg.lr for update number `step` (0-based): linear warm-up, then constant or cosine.
    The warm-up reaches lr at update warmup_steps − 1, or (train.warmup_from_zero) starts at lr 0 and reaches
    it at update warmup_steps, as torch's LambdaLR(lambda update: update / warmup) does in Grokfast's code."""
    if step < cfg.warmup_steps:
        return (step if cfg.warmup_from_zero else step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class GradFilter:
    """Base: no filtering. Subclasses keep per-parameter state keyed by parameter name."""

    def __init__(self, model: nn.Module, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.params = dict(model.named_parameters())

    @torch.no_grad()
    def __call__(self) -> None:
        """Filter every `.grad` in place."""

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError("this filter keeps no state, but the checkpoint holds filter state")


class EmaFilter(GradFilter):
    """Grokfast-EMA: μ ← α·μ + (1−α)·g (μ starts at the first gradient), then g ← g + λ·μ."""

    def __init__(self, model: nn.Module, cfg: FilterConfig) -> None:
        super().__init__(model, cfg)
        self.mu: dict[str, Tensor] = {}

    @torch.no_grad()
    def __call__(self) -> None:
        for name, p in self.params.items():
            if p.grad is None:
                continue
            if name not in self.mu:
                self.mu[name] = p.grad.detach().clone()
            else:
                self.mu[name].lerp_(p.grad, 1 - self.cfg.alpha)
            p.grad.add_(self.mu[name], alpha=self.cfg.amplify)

    def state_dict(self) -> dict[str, Tensor]:
        return {f"mu.{k}": v for k, v in self.mu.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.mu = {k.removeprefix("mu."): v.to(self.params[k.removeprefix("mu.")]) for k, v in state.items()}


class MaFilter(GradFilter):
    """Grokfast-MA: keep the last w gradients in a ring buffer with an O(1) running sum;
    g ← g + λ·mean(window) (or sum), only once the window is full when warm-up is on."""

    def __init__(self, model: nn.Module, cfg: FilterConfig) -> None:
        super().__init__(model, cfg)
        self.ring: dict[str, Tensor] = {}
        self.total: dict[str, Tensor] = {}
        self.count: dict[str, int] = {}

    @torch.no_grad()
    def __call__(self) -> None:
        w = self.cfg.window
        for name, p in self.params.items():
            if p.grad is None:
                continue
            if name not in self.ring:
                self.ring[name] = torch.zeros((w, *p.shape), dtype=p.grad.dtype, device=p.device)
                self.total[name] = torch.zeros_like(p.grad)
                self.count[name] = 0
            slot = self.count[name] % w
            self.total[name].sub_(self.ring[name][slot]).add_(p.grad)
            self.ring[name][slot].copy_(p.grad)
            self.count[name] += 1
            if self.cfg.warmup and self.count[name] < w:
                continue
            scale = self.cfg.amplify / (min(self.count[name], w) if self.cfg.reduce == "mean" else 1)
            p.grad.add_(self.total[name], alpha=scale)

    def state_dict(self) -> dict[str, Tensor]:
        state = {f"ring.{k}": v for k, v in self.ring.items()}
        state |= {f"total.{k}": v for k, v in self.total.items()}
        state |= {f"count.{k}": torch.tensor(v) for k, v in self.count.items()}
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            kind, name = key.split(".", 1)
            if kind == "count":
                self.count[name] = int(value)
            else:
                getattr(self, kind)[name] = value.to(self.params[name].device)


FILTERS: dict[str, type[GradFilter]] = {"none": GradFilter, "ema": EmaFilter, "ma": MaFilter}


def make_filter(model: nn.Module, cfg: FilterConfig) -> GradFilter:
    return FILTERS[cfg.kind](model, cfg)
