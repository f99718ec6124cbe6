"""Decoder-only transformer (GPT-2 conventions: pre-LayerNorm, learned positions, tanh-GELU, tied embeddings).

The model knows nothing about tasks. It holds a block of `cfg.n_layers` layers and applies it `cfg.loops`
times with shared weights (`cfg.depth` layers in all; loops = 1 is the plain model). Residual-stream states
have TransformerLens-style hook names (`hook_embed`, `blocks.{l}.hook_resid_pre`, `blocks.{l}.hook_resid_post`,
...) indexed by *depth* l = 0 .. depth − 1, so every loop has its own hook points.
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
# On a CPU, attention over a few positions is faster as broadcast products than as SDPA's tiny matrix kernels.
SHORT_SEQUENCE = 8


def broadcast_attention(q: Tensor, k: Tensor, v: Tensor, visible: Tensor, dropout: float) -> Tensor:
    """Softmax attention as broadcast products: on a CPU, for a few positions, faster than SDPA's kernels.
    q [batch, query, head, d_head], k and v [batch, key, head, d_head], visible [batch or 1, query, key]
    (True where a query may attend); returns [batch, query, head, d_head]."""
    scores = (q[:, :, None] * k[:, None]).sum(-1) / math.sqrt(q.shape[-1])  # [batch, query, key, head]
    weights = F.dropout(scores.masked_fill(~visible[..., None], float("-inf")).softmax(2), dropout)
    return (weights[..., None] * v[:, None]).sum(2)


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
        drop = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and pos <= SHORT_SEQUENCE:
            q, k, v = self.qkv(x).view(batch, pos, 3, self.n_heads, self.d_head).unbind(2)
            causal = torch.ones(pos, pos, dtype=torch.bool, device=x.device).tril()
            return self.out(broadcast_attention(q, k, v, causal[None], drop).reshape(batch, pos, d_model))
        q, k, v = self.qkv(x).view(batch, pos, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        return self.out(z.transpose(1, 2).reshape(batch, pos, d_model))

    def forward_one_query(self, x: Tensor, rows: Tensor, positions: Tensor) -> Tensor:
        """Attention output at one query position per row (`positions`), attending to keys 0..position."""
        batch, pos, d_model = x.shape
        k, v = (
            F.linear(x, self.qkv.weight[d_model:], self.qkv.bias[d_model:])
            .view(batch, pos, 2, self.n_heads, -1)
            .unbind(2)
        )
        q = F.linear(x[rows, positions], self.qkv.weight[:d_model], self.qkv.bias[:d_model])
        q = q.view(batch, 1, self.n_heads, self.d_head)
        visible = torch.arange(pos, device=x.device)[None, None, :] <= positions[:, None, None]  # [batch, 1, key]
        z = broadcast_attention(q, k, v, visible, self.dropout if self.training else 0.0)
        return self.out(z.reshape(batch, d_model))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "gelu": F.gelu,
    "relu": F.relu,
}


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln1(x)), then + mlp(ln2(x)) (or, with residual="normed", the
    residual continues from ln1(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.normed_residual = cfg.residual == "normed"

    def forward(self, x: Tensor, depth: int, hooks: dict[str, Hook] | None) -> Tensor:
        h = self.ln1(x)
        if self.normed_residual:
            x = h
        attn_out = _hooked(self.drop(self.attn(h)), f"blocks.{depth}.hook_attn_out", hooks)
        x = _hooked(x + attn_out, f"blocks.{depth}.hook_resid_mid", hooks)
        mlp_out = _hooked(self.drop(self.mlp(self.ln2(x))), f"blocks.{depth}.hook_mlp_out", hooks)
        return x + mlp_out

    def forward_answer(self, x: Tensor, rows: Tensor, positions: Tensor) -> Tensor:
        """The block's output at the answer position only ([batch, d_model]): keys and values need every
        position, but the query, the output projection and the MLP only the answer's. Used for the last
        layer when no hooks are attached; equal to forward(x)[rows, positions]."""
        h = self.ln1(x)
        residual = (h if self.normed_residual else x)[rows, positions]
        x = residual + self.drop(self.attn.forward_one_query(h, rows, positions))
        return x + self.drop(self.mlp(self.ln2(x)))


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
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))  # one loop's layers
        self.ln_final = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, d_vocab, bias=False)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight
        if cfg.init == "gpt2":
            self.apply(self._init_gpt2)
            for name, param in self.named_parameters():
                if name.endswith(("attn.out.weight", "mlp.proj.weight")):  # GPT-2's scaled residual init, by the
                    nn.init.normal_(param, std=INIT_STD / math.sqrt(2 * cfg.depth))  # layers the stream passes
        else:  # PyTorch defaults, with the in-projection as nn.MultiheadAttention initialises it
            for block in self.blocks:
                nn.init.xavier_uniform_(block.attn.qkv.weight)
                nn.init.zeros_(block.attn.qkv.bias)
                nn.init.zeros_(block.attn.out.bias)
        if cfg.zero_init_out:  # every layer adds 0 to the residual stream at init: the identity
            for block in self.blocks:
                for linear in (block.attn.out, block.mlp.proj):
                    nn.init.zeros_(linear.weight)
                    nn.init.zeros_(linear.bias)
        if cfg.init_scale != 1.0:
            with torch.no_grad():
                for param in matrices(self):
                    param.mul_(cfg.init_scale)

    @staticmethod
    def _init_gpt2(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def block_at(self, depth: int) -> Block:
        """The layer applied at `depth`: loop depth // n_layers runs blocks[depth % n_layers]."""
        return self.blocks[depth % len(self.blocks)]

    def injects(self, depth: int) -> bool:
        """Whether the embeddings are re-added before `depth` (model.inject_input: each loop after the first)."""
        return self.cfg.inject_input and depth > 0 and depth % self.cfg.n_layers == 0

    def residual(
        self,
        tokens: Tensor,
        hooks: dict[str, Hook] | None = None,
        depth: int | None = None,
        pos_offset: Tensor | None = None,
    ) -> Tensor:
        """Residual stream [batch, pos, d_model] after the first `depth` layers (all by default; before
        ln_final). `pos_offset` [batch] shifts each row's position ids: a span cut out of a sentence keeps
        the positions it had there (tree projections run spans with attention restricted to them)."""
        x, _ = self._run(tokens, hooks, self.cfg.depth if depth is None else depth, pos_offset)
        return x

    def _run(
        self, tokens: Tensor, hooks: dict[str, Hook] | None, depth: int, pos_offset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(residual stream after `depth` layers, the embeddings): the embeddings are what input injection
        re-adds, after the hook of the last layer's resid_post and before the next loop's resid_pre, so
        patching S[i] (a resid_post) keeps the injection that follows it."""
        n_pos = tokens.shape[1] + (0 if pos_offset is None or not len(pos_offset) else int(pos_offset.max()))
        if n_pos > self.n_ctx:
            raise ValueError(f"input reaches position {n_pos}; the model's n_ctx is {self.n_ctx}")
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        if pos_offset is not None:
            pos = pos[None, :] + pos_offset[:, None]
        x = _hooked(self.embed(tokens), "hook_embed", hooks)
        embedded = x = self.drop(x + _hooked(self.pos_embed(pos), "hook_pos_embed", hooks))
        for layer in range(depth):
            if self.injects(layer):
                x = x + embedded
            x = _hooked(x, f"blocks.{layer}.hook_resid_pre", hooks)
            x = self.block_at(layer)(x, layer, hooks)
            x = _hooked(x, f"blocks.{layer}.hook_resid_post", hooks)
        return x, embedded

    def forward(self, tokens: Tensor, positions: Tensor | None = None, hooks: dict[str, Hook] | None = None) -> Tensor:
        if positions is None:
            return self.unembed(self.ln_final(self.residual(tokens, hooks)))
        rows = torch.arange(len(tokens), device=tokens.device)
        if hooks:  # every hook point at every position
            return self.unembed(self.ln_final(self.residual(tokens, hooks)[rows, positions]))
        last = self.cfg.depth - 1
        x, embedded = self._run(tokens, None, last)
        if self.injects(last):
            x = x + embedded
        return self.unembed(self.ln_final(self.block_at(last).forward_answer(x, rows, positions)))

    def hook_names(self) -> list[str]:
        names = ["hook_embed", "hook_pos_embed"]
        for depth in range(self.cfg.depth):
            names += [f"blocks.{depth}.hook_{n}" for n in ("resid_pre", "attn_out", "resid_mid", "mlp_out")]
            names.append(f"blocks.{depth}.hook_resid_post")
        return names


def matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weight matrices and embeddings (each tied or shared one once): what `init_scale` scales and what
    `weights/matrix_norm` measures; LayerNorm gains and biases are left out."""
    return [p for name, p in model.named_parameters() if p.dim() >= 2]


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
