"""The one contract for everything that changes the gradient between `backward()` and the optimiser step:
Grokfast's filters (`filter.kind`, grokfast.py) and the gradient transforms (`train.grad_transform`: ⊥Grad,
EGD). The trainer builds each from the model and the config section that chose it, and calls it with no
arguments after `backward()` — the Grokfast filter first, then the transform — before clipping and the step
(`train.Trainer.update`). One that keeps state returns it from `state_dict()` (tensors only, keyed by parameter
name: it goes into every checkpoint's `state.pt`, loaded with `weights_only=True`), so that `--resume`
continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class GradTransform:
    """`"none"`: leaves the gradients as they are. Subclasses override `__call__` (and keep state by name)."""

    def __init__(self, model: nn.Module, cfg: Any) -> None:
        self.cfg = cfg  # the section that chose it: FilterConfig for a Grokfast filter, TrainConfig otherwise
        self.params = dict(model.named_parameters())  # each shared or tied parameter once, by name

    @torch.no_grad()
    def __call__(self) -> None:
        """Rewrite every `p.grad` of `self.params` in place (parameters without a gradient are skipped)."""

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but the checkpoint holds some")
