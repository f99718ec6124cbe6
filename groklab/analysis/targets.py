"""Which token each method decodes or perturbs, and where, read from the task's own fact structure (never by
re-parsing strings).

A logit-lens target is (field, token): the token id in `split.fields[field]` is looked for in the residual
stream at the input position of the named token (`LAST`: the answer position, the last real input token).
Causal tracing perturbs each named input token in turn. Composition inputs are `h r1 r2` (bridge entity
expected at r1, Wang et al. §3.3); comparison inputs are `attr <q> e1 <mask> e2` (the paper's template) or
`attr e1 e2` (each entity's attribute value expected at its own position, §4): PERTURBED_TOKENS holds the
short template's positions, and `token_positions` / `targets` give a split's real ones.
"""

from __future__ import annotations

import numpy as np

from groklab.tasks.comparison import TEMPLATE_POSITIONS, template_of
from groklab.tasks.dataset import Split, Vocab

ANSWER_POSITION = -1  # a target's position meaning "the answer position", wherever each row's input ends
LAST = "last"  # a target's token meaning the answer position

# logit lens: target name -> (field whose token is decoded, input token at whose position it is looked for)
TARGETS: dict[str, dict[str, tuple[str, str]]] = {
    "composition": {"bridge@r1": ("bridge", "r1"), "r2@r2": ("r2", "r2"), "answer@last": ("answer", LAST)},
    "comparison": {"v1@e1": ("v1", "e1"), "v2@e2": ("v2", "e2"), "answer@last": ("answer", LAST)},
}

# Causal tracing perturbs each input token in turn (science.md §6): token name -> its input position.
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
    """TARGETS[task] as (field, input position) for `split`, its tokens placed where its template puts them."""
    at = token_positions(task, split) | {LAST: ANSWER_POSITION}
    return {name: (field, at[token]) for name, (field, token) in TARGETS[task].items()}


def position_names(task: str, split: Split, vocab: Vocab) -> list[str]:
    """A label for every input position of `split`: the perturbable token there (head, r1, e1 ...), else the one
    token every row has there (comparison's <q>, <mask>), else its index. Written into the analysis JSON, so a
    figure labels positions from the data beside it (`attribute <q> e1 <mask> e2`)."""
    named = {q: name for name, q in token_positions(task, split).items()}
    labels = []
    for q in range(split.tokens.shape[1]):
        column = np.unique(split.tokens[:, q])
        labels.append(named.get(q) or (vocab.tokens[column[0]] if len(column) == 1 else f"pos {q}"))
    return labels
