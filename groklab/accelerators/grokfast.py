"""Grokfast (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients", Alg. 1 and 2).

The slow part of each parameter's gradient (a low-pass filter over the updates) is amplified by λ and added back:

    EMA:  μ ← α·μ + (1 − α)·g   (μ starts at the first gradient),   g ← g + λ·μ
    MA:   g ← g + λ·mean(last w gradients)   (or their sum; with warm-up only once the window is full)

`[filter]` holds the settings (`filter.kind`, α `filter.alpha`, λ `filter.amplify`, w `filter.window`); they run
first among the gradient transforms, after `backward()` and before ⊥Grad / EGD, clipping and the step.
The state (μ, the MA ring and its running sum) is keyed by parameter name and goes into every checkpoint.

Checked (tests/test_optim.py): EMA and MA match hand-computed examples, λ = 0 is a no-op, and a filter restored
from its state_dict continues exactly; (tests/test_accelerators.py) resuming a run is bit-exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from groklab.accelerators.base import GradTransform
from groklab.config import FilterConfig


class EmaFilter(GradTransform):
    """`filter.kind = "ema"`: Grokfast-EMA, μ ← α·μ + (1−α)·g, then g ← g + λ·μ."""

    def __init__(self, model: torch.nn.Module, cfg: FilterConfig) -> None:
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


class MaFilter(GradTransform):
    """`filter.kind = "ma"`: Grokfast-MA, the last w gradients in a ring buffer with an O(1) running sum;
    g ← g + λ·mean(window) (or sum), only once the window is full when warm-up is on."""

    def __init__(self, model: torch.nn.Module, cfg: FilterConfig) -> None:
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
