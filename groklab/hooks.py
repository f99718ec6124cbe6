"""Run a model with a cache of residual-stream states, or with some states replaced (activation patching).

One generic function, `run_with_hooks`; caching and patching are thin variants of it. Hook names follow
TransformerLens (`blocks.{l}.hook_resid_pre`, `blocks.{l}.hook_resid_post`, ...), indexed by depth l = 0 ..
`model.cfg.depth` − 1, so in a looped model (`model.loops`) every loop has its own.
science.md §6 notation: S[i, pos] = residual stream after i layers = `blocks.{i-1}.hook_resid_post` (i >= 1),
`blocks.0.hook_resid_pre` for i = 0 (the embeddings). With input injection (`model.inject_input`) the embeddings
are re-added after S[i] at a loop's end, so patching S[i] keeps the injection that follows.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from groklab.model import Hook, Transformer


def resid_name(i: int) -> str:
    """Hook name of S[i, ·]: the residual stream after i blocks."""
    return "blocks.0.hook_resid_pre" if i == 0 else f"blocks.{i - 1}.hook_resid_post"


@torch.no_grad()
def run_with_hooks(model: Transformer, tokens: Tensor, hooks: dict[str, Hook],
                   positions: Tensor | None = None) -> Tensor:
    """Forward pass in eval mode with `hooks`; returns logits (at `positions` when given)."""
    was_training = model.training
    model.eval()
    try:
        return model(tokens, positions, hooks=hooks)
    finally:
        model.train(was_training)


def run_with_cache(model: Transformer, tokens: Tensor, names: Iterable[str] | None = None,
                   positions: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and a cache {hook name: state} of every requested hook (default: all)."""
    cache: dict[str, Tensor] = {}

    def store(x: Tensor, name: str) -> None:
        cache[name] = x.detach()

    wanted = model.hook_names() if names is None else list(names)
    logits = run_with_hooks(model, tokens, {n: store for n in wanted}, positions)
    return logits, cache


def run_with_patches(model: Transformer, tokens: Tensor, patches: dict[str, tuple[Tensor | int, Tensor]],
                     positions: Tensor | None = None) -> Tensor:
    """Logits with, for each hook name, the state at position(s) `pos` replaced by `value`:
    `patches = {name: (pos, value)}`; `pos` is an int or a per-example [batch] tensor, `value` [batch, d]."""

    def patcher(x: Tensor, name: str) -> Tensor:
        pos, value = patches[name]
        x = x.clone()
        rows = torch.arange(len(x), device=x.device)
        x[rows, pos] = value.to(x.dtype)
        return x

    return run_with_hooks(model, tokens, {n: patcher for n in patches}, positions)
