"""Optimiser pieces: AdamW with the paper's groups, the LR schedule, and Grokfast gradient filters.

Filters (Lee et al. 2024) act on each parameter's gradient after `backward()` and before clipping and the
optimiser step; the optimiser and its weight decay are untouched. Their state is part of every checkpoint,
so a resumed run continues exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from groklab.config import FilterConfig, TrainConfig
from groklab.model import param_groups

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, Wang et al.) or Adam (weight decay as an L2 term in the gradient, as in
    Grokfast's and Power et al.'s code). Biases and LayerNorm are not decayed unless train.decay_all."""
    # fused kernels exist for CUDA and CPU (one pass over each tensor instead of a dozen foreach sweeps)
    fused = all(p.device.type in ("cuda", "cpu") for p in model.parameters())
    groups = (
        [{"params": list(model.parameters()), "weight_decay": cfg.weight_decay}]
        if cfg.decay_all
        else param_groups(model, cfg.weight_decay)
    )
    return OPTIMIZERS[cfg.optimizer](
        groups, lr=cfg.lr, betas=cfg.betas, fused=fused or None, foreach=None if fused else True
    )


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
