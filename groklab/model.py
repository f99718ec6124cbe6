"""Decoder-only transformer (GPT-2 conventions: pre-LayerNorm, learned positions, tanh-GELU, tied embeddings).

The model knows nothing about tasks. Residual-stream states have TransformerLens-style hook names
(`hook_embed`, `blocks.{l}.hook_resid_pre`, `blocks.{l}.hook_resid_post`, ...) indexed by *depth*, so that
with parameter sharing (one block applied at several depths) every depth still has its own hook point.
A hook is a function `(tensor, name) -> tensor | None`; returning a tensor replaces the state (patching).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groklab.config import ModelConfig

Hook = Callable[[Tensor, str], Tensor | None]
INIT_STD = 0.02  # GPT-2's initialiser range


class Attention(nn.Module):
    """Causal multi-head self-attention; right padding never reaches earlier positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor) -> Tensor:  # x: [batch, pos, d_model]
        batch, pos, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, pos, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        return self.out(z.transpose(1, 2).reshape(batch, pos, d_model))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, depth: int, hooks: dict[str, Hook] | None) -> Tensor:
        attn_out = _hooked(self.drop(self.attn(self.ln1(x))), f"blocks.{depth}.hook_attn_out", hooks)
        x = _hooked(x + attn_out, f"blocks.{depth}.hook_resid_mid", hooks)
        mlp_out = _hooked(self.drop(self.mlp(self.ln2(x))), f"blocks.{depth}.hook_mlp_out", hooks)
        return x + mlp_out


def _hooked(x: Tensor, name: str, hooks: dict[str, Hook] | None) -> Tensor:
    if hooks is None or name not in hooks:
        return x
    replaced = hooks[name](x, name)
    return x if replaced is None else replaced


class Transformer(nn.Module):
    """GPT-style decoder. `forward(tokens, positions)` returns logits only at `positions` when given
    (the answer position: the loss and accuracy need nothing else), else at every position."""

    def __init__(self, cfg: ModelConfig, d_vocab: int, n_ctx: int) -> None:
        super().__init__()
        self.cfg, self.d_vocab, self.n_ctx = cfg, d_vocab, n_ctx
        self.embed = nn.Embedding(d_vocab, cfg.d_model)
        self.pos_embed = nn.Embedding(n_ctx, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.ln_final = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, d_vocab, bias=False)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight
        self.apply(self._init)
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.proj.weight")):  # GPT-2's scaled residual init
                nn.init.normal_(param, std=INIT_STD / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def block_at(self, depth: int) -> Block:
        """The block applied at `depth` (shared blocks repeat: depth l uses blocks[l % n_unique])."""
        return self.blocks[depth % len(self.blocks)]

    def residual(self, tokens: Tensor, hooks: dict[str, Hook] | None = None) -> Tensor:
        """Final residual stream [batch, pos, d_model] (before ln_final)."""
        if tokens.shape[1] > self.n_ctx:
            raise ValueError(f"input has {tokens.shape[1]} positions; the model's n_ctx is {self.n_ctx}")
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = _hooked(self.embed(tokens), "hook_embed", hooks)
        x = self.drop(x + _hooked(self.pos_embed(pos), "hook_pos_embed", hooks))
        for depth in range(self.cfg.n_layers):
            x = _hooked(x, f"blocks.{depth}.hook_resid_pre", hooks)
            x = self.block_at(depth)(x, depth, hooks)
            x = _hooked(x, f"blocks.{depth}.hook_resid_post", hooks)
        return x

    def forward(
        self, tokens: Tensor, positions: Tensor | None = None, hooks: dict[str, Hook] | None = None
    ) -> Tensor:
        x = self.residual(tokens, hooks)
        if positions is not None:
            x = x[torch.arange(len(x), device=x.device), positions]
        return self.unembed(self.ln_final(x))

    def hook_names(self) -> list[str]:
        names = ["hook_embed", "hook_pos_embed"]
        for depth in range(self.cfg.n_layers):
            names += [f"blocks.{depth}.hook_{n}" for n in ("resid_pre", "attn_out", "resid_mid", "mlp_out")]
            names.append(f"blocks.{depth}.hook_resid_post")
        return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as in the paper's (Hugging Face Trainer) setup: no decay on biases and LayerNorm."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        is_norm = ".ln" in f".{name}" or name.startswith("ln_final")
        (no_decay if name.endswith("bias") or is_norm else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
