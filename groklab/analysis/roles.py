"""Which token to look for where, chosen by role from the task's own fact structure (never by re-parsing).

A target is (field, position): the token id in `split.fields[field]` is looked for in the residual stream at
input position `position`; position -1 means the answer position (the last real input token).
Composition inputs are `h r1 r2` (bridge entity expected at r1, Wang et al. §3.3); comparison inputs are
`attr <q> e1 <mask> e2` (the paper's template) or `attr e1 e2` (each entity's attribute value expected at its own
position, §4): the tables below hold the short template's positions, and `token_positions` / `targets` give a
split's real ones.
"""

from __future__ import annotations

from groklab.tasks.comparison import TEMPLATE_POSITIONS, template_of
from groklab.tasks.dataset import Split

ANSWER_POSITION = -1

TARGETS: dict[str, dict[str, tuple[str, int]]] = {
    "composition": {"bridge@r1": ("bridge", 1), "r2@r2": ("r2", 2), "answer@last": ("answer", ANSWER_POSITION)},
    "comparison": {"v1@e1": ("v1", 1), "v2@e2": ("v2", 2), "answer@last": ("answer", ANSWER_POSITION)},
}

# Causal tracing perturbs each input token in turn (science.md §6): token role -> its input position.
PERTURBED_TOKENS: dict[str, dict[str, int]] = {
    "composition": {"head": 0, "r1": 1, "r2": 2},
    "comparison": {"attribute": 0, "e1": 1, "e2": 2},
}


def token_positions(task: str, split: Split) -> dict[str, int]:
    """Input position of each perturbable token of `split`'s facts (comparison: by the split's template)."""
    if task == "comparison":
        return dict(TEMPLATE_POSITIONS[template_of(split)])
    return dict(PERTURBED_TOKENS[task])


def targets(task: str, split: Split) -> dict[str, tuple[str, int]]:
    """TARGETS[task] with positions moved to where `split`'s template puts each token."""
    if task != "comparison":
        return dict(TARGETS[task])
    at = token_positions(task, split)
    return {"v1@e1": ("v1", at["e1"]), "v2@e2": ("v2", at["e2"]), "answer@last": ("answer", ANSWER_POSITION)}
