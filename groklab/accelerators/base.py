"""The interface of a gradient transform: the identity, and what every transform shares.

A transform rewrites each parameter's `.grad` in place after `backward()` and the Grokfast filter, before
clipping and the optimiser step (`train.Trainer.update`). One that keeps state returns it from `state_dict()`
(tensors only: it goes into every checkpoint's `state.pt`, loaded with `weights_only=True`), so that `--resume`
continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from groklab.config import TrainConfig


class GradTransform:
    """`train.grad_transform = "none"`: leaves the gradients as they are. Subclasses override `__call__`."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    @torch.no_grad()
    def __call__(self, params: Iterable[nn.Parameter]) -> None:
        """Rewrite every `p.grad` of `params` in place (parameters without a gradient are skipped)."""

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but the checkpoint holds some")
