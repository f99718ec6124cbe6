"""Muon (Jordan et al. 2024) on the blocks' weight matrices, AdamW on everything else.

Muon orthogonalises each matrix's momentum: B ← μB + g, with Nesterov B̃ = g + μB, then O ≈ U Vᵀ of
B̃ = U S Vᵀ by five quintic Newton–Schulz steps (in bfloat16; singular values land in ~[0.7, 1.2]), and
θ ← θ − lr·wd·θ − lr·√max(1, rows/cols)·O. `torch.optim.Muon` (torch ≥ 2.9) implements exactly this and
accepts only 2-D parameters. As its authors prescribe, it gets the hidden layers' matrices — the blocks'
`attn.qkv` (one [3·d_model, d_model] matrix), `attn.out`, `mlp.fc`, `mlp.proj` — while embeddings, the
unembedding, LayerNorms and biases go to AdamW with the usual groups. Tveit et al. (2025, "Muon optimizer
accelerates grokking") report the mean grokking epoch falling from 153 to 103 (−33%) against AdamW.

Settings: Muon's lr is `accelerator.muon_lr` (0.02, Jordan's default: its updates have unit singular values, so
AdamW's 1e-3 would be a ~20× smaller step); momentum 0.95 with Nesterov and torch's "original" shape factor
(torch's defaults, which are Jordan's). Weight decay is `train.weight_decay`, decoupled as in AdamW
(θ ← (1 − lr·wd)·θ) but at Muon's lr: per update the matrices shrink muon_lr / lr times (20× at the defaults)
more than AdamW would shrink them. The warm-up / cosine schedule and `filter.normalize_lr` scale both lrs alike.
With shared blocks (a looped model, `model.loops`) each shared matrix is one parameter, stepped once.

Checked (tests/test_accelerators.py): Muon holds exactly the 2-D block matrices, each once, also with shared
blocks and tied embeddings; resuming a run is bit-exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from groklab.errors import UserError

MOMENTUM = 0.95  # μ: torch's and Jordan's default
BLOCKS = "blocks."  # the model's hidden layers: Transformer.blocks


def block_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The blocks' 2-D weight matrices, each shared parameter once (named_parameters removes duplicates)."""
    return [p for name, p in model.named_parameters() if name.startswith(BLOCKS) and p.ndim == 2]


class MuonWithAdamW:
    """Muon on `matrices`, `adamw` (built over the other parameters) on the rest, stepped as one optimiser.
    `param_groups` lists AdamW's groups first, then Muon's, so the trainer's schedule sets every lr."""

    def __init__(self, matrices: list[nn.Parameter], adamw: torch.optim.Optimizer, lr: float, weight_decay: float):
        if not hasattr(torch.optim, "Muon"):
            raise UserError(f"train.optimizer=muon needs torch.optim.Muon (torch >= 2.9; this is {torch.__version__})")
        muon = torch.optim.Muon(
            matrices, lr=lr, weight_decay=weight_decay, momentum=MOMENTUM, nesterov=True, adjust_lr_fn="original"
        )
        self.parts = {"adamw": adamw, "muon": muon}

    @property
    def param_groups(self) -> list[dict]:
        return [group for part in self.parts.values() for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts.values():
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts.values():
            part.step()

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
