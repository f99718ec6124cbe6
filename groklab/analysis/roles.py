"""Which token to look for where, chosen by role from the task's own fact structure (never by re-parsing).

A target is (field, position): the token id in `split.fields[field]` is looked for in the residual stream at
input position `position`; position -1 means the answer position (the last real input token).
Composition inputs are `h r1 r2` (bridge entity expected at r1, Wang et al. §3.3); comparison inputs are
`attr e1 e2` (each entity's attribute value expected at its own position, §4).
"""

from __future__ import annotations

ANSWER_POSITION = -1

TARGETS: dict[str, dict[str, tuple[str, int]]] = {
    "composition": {"bridge@r1": ("bridge", 1), "r2@r2": ("r2", 2), "answer@last": ("answer", ANSWER_POSITION)},
    "comparison": {"v1@e1": ("v1", 1), "v2@e2": ("v2", 2), "answer@last": ("answer", ANSWER_POSITION)},
}

# Causal tracing perturbs each input token in turn (SPEC §6): token role -> its input position.
PERTURBED_TOKENS: dict[str, dict[str, int]] = {
    "composition": {"head": 0, "r1": 1, "r2": 2},
    "comparison": {"attribute": 0, "e1": 1, "e2": 2},
}
