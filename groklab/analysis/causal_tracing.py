"""Causal tracing (science.md §6; Wang et al. 2024 App. D): which residual-stream states does the prediction
depend on?

For each input position p we build a *perturbed* input: the token at p replaced by another token of the same
type that changes the answer under the knowledge base (composition: h→h', r1→r1' among h's relations,
r2→r2' among the bridge's relations; comparison: the attribute, or an entity whose value flips the
comparison). Then, for every depth i and position q, the perturbed state S[i, q] is patched into the clean run,
the layers above are recomputed, and we record whether the top-1 prediction changes. Causal strength of
(i, q) under the perturbation of p = fraction of examples whose prediction changes. The paper's heatmap is the
diagonal q = p (each position traced with its own token perturbed); the full grid is kept too, because e.g. the
bridge state at r1 also carries the head's perturbation.

Perturbations depend only on the data, so they are drawn once (seeded) and reused at every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.methods import Measure
from groklab.analysis.targets import position_names, token_positions
from groklab.errors import UserError
from groklab.hooks import resid_name, run_with_cache, run_with_hooks, run_with_patches
from groklab.model import Transformer
from groklab.tasks.dataset import ABSENT, Split, TaskData


@dataclass(frozen=True)
class Perturbation:
    """The token at `position` replaced, for the rows where a replacement that changes the answer exists."""

    name: str
    position: int
    rows: np.ndarray  # indices into the traced split
    tokens: np.ndarray  # [len(rows), L] perturbed inputs


def atomic_table(train: Split, subject: str, relation: str, obj: str, size: int) -> np.ndarray:
    """[size, size] lookup subject token × relation token → object token (ABSENT where no atomic fact),
    read from the atomic facts of the training set (every atomic fact is trained on, ID and OOD alike)."""
    table = np.full((size, size), ABSENT, dtype=np.int64)
    atomic = train.kinds == "atomic" if train.kinds is not None else np.ones(len(train), bool)
    table[train.fields[subject][atomic], train.fields[relation][atomic]] = train.fields[obj][atomic]
    return table


def pick(rng: np.random.Generator, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One allowed column per row, uniformly at random (rows with none are dropped): (rows, choices)."""
    keys = np.where(allowed, rng.random(allowed.shape), -1.0)
    rows = np.flatnonzero(allowed.any(1))
    return rows, keys[rows].argmax(1)


def composition_candidates(data: TaskData, split: Split) -> dict[str, np.ndarray]:
    """Per perturbed token, an [N, V] mask of replacement tokens that change the answer of `h r1 r2`."""
    tail = atomic_table(data.train, "head", "r1", "answer", len(data.vocab))
    h, r1, r2, t = (split.fields[k] for k in ("head", "r1", "r2", "answer"))
    b = split.fields["bridge"]

    def second_hop(bridges: np.ndarray, relations: np.ndarray) -> np.ndarray:
        out = tail[np.maximum(bridges, 0), relations]
        return np.where(bridges != ABSENT, out, ABSENT)

    is_entity = (tail >= 0).any(1)
    tokens = np.arange(len(data.vocab))
    new_h = second_hop(tail[:, r1].T, r2[:, None])  # answer of (h', r1, r2) for every h'
    new_r1 = second_hop(tail[h], r2[:, None])  # answer of (h, r1', r2) for every r1'
    new_r2 = tail[b]  # answer of (h, r1, r2') = (b, r2')
    return {
        "head": is_entity[None] & (tokens[None] != h[:, None]) & (new_h != t[:, None]),
        "r1": (tail[h] >= 0) & (tokens[None] != r1[:, None]) & (new_r1 != t[:, None]),
        "r2": (new_r2 >= 0) & (new_r2 != t[:, None]),
    }


def comparison_candidates(data: TaskData, split: Split) -> dict[str, np.ndarray]:
    """Per perturbed token, an [N, V] mask of replacements that change the label of `attr e1 e2`: another
    attribute (labels are per attribute), or an entity whose value flips the comparison. Value token ids
    increase with the value, so comparing ids compares values."""
    value = atomic_table(data.train, "entity", "attribute", "value", len(data.vocab))
    a, e1, e2 = (split.fields[k] for k in ("attribute", "e1", "e2"))
    v1, v2 = value[e1, a], value[e2, a]
    order = np.sign(v1 - v2)
    tokens = np.arange(len(data.vocab))
    is_attribute = (value >= 0).any(0)
    new_v = value[:, a].T  # [N, V]: every entity's value of the row's attribute
    known = new_v >= 0
    return {
        "attribute": is_attribute[None] & (tokens[None] != a[:, None]),
        "e1": known & (np.sign(new_v - v2[:, None]) != order[:, None]),
        "e2": known & (np.sign(v1[:, None] - new_v) != order[:, None]),
    }


CANDIDATES = {"composition": composition_candidates, "comparison": comparison_candidates}


def plan_perturbations(data: TaskData, split: Split, seed: int = 0) -> list[Perturbation]:
    """The perturbed inputs for every perturbable position of `split` (drawn once, seeded)."""
    if data.task not in CANDIDATES:
        raise UserError(f"causal tracing knows {', '.join(CANDIDATES)} facts, not {data.task!r}")
    if split.kinds is not None and not np.all(split.kinds == "inferred"):
        raise UserError("causal tracing needs inferred facts: choose a *_inferred* split (default train_inferred)")
    rng = np.random.default_rng(seed)
    plans = []
    at = token_positions(data.task, split)
    for name, allowed in CANDIDATES[data.task](data, split).items():
        position = at[name]
        rows, choice = pick(rng, allowed)
        tokens = split.tokens[rows].copy()
        tokens[:, position] = choice
        plans.append(Perturbation(name, position, rows, tokens))
    return plans


def prepare(data: TaskData, rows: Split) -> Measure:
    """Causal tracing at every checkpoint with the same perturbations, and every input position named in the
    JSON (`position_names`) so that its heatmap labels them without importing this module."""
    plans = plan_perturbations(data, rows)
    return Measure(
        lambda model, device: causal_tracing(model, rows, plans, device),
        {"position_names": position_names(data.task, rows, data.vocab)},
    )


@torch.no_grad()
def causal_tracing(model: Transformer, split: Split, plans: list[Perturbation], device: torch.device) -> dict:
    """Causal strength of every state S[i, q] (i = 0..depth layers, every loop; q = input position) on the top-1
    prediction, for each planned perturbation; plus the paper's diagonal heatmap `strength[i][q]`."""
    n_states, n_pos = model.cfg.depth + 1, int(split.tokens.shape[1])
    names = [resid_name(i) for i in range(n_states)]
    diagonal = np.zeros((n_states, n_pos))
    out: dict = {"perturbed": {}}
    all_tokens = torch.as_tensor(split.tokens, device=device)
    all_last = torch.as_tensor(split.lengths, device=device) - 1
    all_clean = run_with_hooks(model, all_tokens, {}, all_last).argmax(-1)  # one clean run serves every plan
    for plan in plans:
        rows = torch.as_tensor(plan.rows, device=device)
        clean_tokens, last, clean = all_tokens[rows], all_last[rows], all_clean[rows]
        answers = torch.as_tensor(split.answers[plan.rows], device=device)
        corrupt_logits, cache = run_with_cache(
            model, torch.as_tensor(plan.tokens, device=device), names, positions=last
        )
        grid = np.zeros((n_states, n_pos))
        for i, name in enumerate(names):
            grid[i] = changed_fraction_per_position(model, clean_tokens, last, clean, cache[name], name)
        diagonal[:, plan.position] = grid[:, plan.position]
        out["perturbed"][plan.name] = {
            "position": plan.position,
            "n": len(plan.rows),
            "clean_accuracy": (clean == answers).double().mean().item(),
            "perturbed_changes": (corrupt_logits.argmax(-1) != clean).double().mean().item(),
            "strength": grid.tolist(),
        }
    out["strength"] = diagonal.tolist()
    return out


def changed_fraction_per_position(
    model: Transformer, tokens: Tensor, last: Tensor, clean: Tensor, corrupt: Tensor, name: str
) -> list[float]:
    """For each position q: the fraction of rows whose top-1 prediction changes when the corrupt state at
    (`name`, q) replaces the clean one. All positions go through one batched forward pass."""
    n, n_pos = tokens.shape
    positions = torch.arange(n_pos, device=tokens.device).repeat_interleave(n)
    rows = torch.arange(n, device=tokens.device).repeat(n_pos)
    patched = run_with_patches(
        model, tokens.repeat(n_pos, 1), {name: (positions, corrupt[rows, positions])}, positions=last.repeat(n_pos)
    )
    changed = (patched.argmax(-1) != clean.repeat(n_pos)).double().view(n_pos, n)
    return changed.mean(1).tolist()
