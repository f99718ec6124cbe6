"""The in-memory form of a task's data: a vocabulary, a training split and named probe splits.

Every split keeps its facts' structure (head, relations, bridge entity, answer ...) as integer token-id
columns, so analysis never re-parses strings. Inputs are right-padded; the answer is predicted at the last
real input position (`lengths - 1`), so padding never influences it under a causal mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAD = "<pad>"
# Two sentinels, each defined here once. Token ids are >= 0, so -1 is never a token.
ABSENT = -1  # a value a row does not have: a fact's missing field (the bridge of an atomic fact), an input
# position after the input's end, a linear-rule answer where both rules agree, padding of a tree's spans
NO_TARGET = -1  # a `targets` position without a loss (padding; the input under loss_on="output")


@dataclass(frozen=True)
class Vocab:
    """The task's own tokens; id = position in `tokens`. `<pad>` is always id 0."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != PAD:
            raise ValueError(f"vocabulary must start with {PAD!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")

    @property
    def pad_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}


@dataclass(frozen=True)
class Split:
    """One split: `tokens` int64 [N, L] right-padded with pad id 0; `lengths` int64 [N] real input length;
    `answers` int64 [N] answer token id; `fields` name -> int64 [N] token ids (ABSENT where a fact lacks the
    field, e.g. `bridge` of an atomic fact); `kinds` str label per row (e.g. "atomic" / "inferred").

    Sequence tasks (structural grokking: the output is a whole sentence) also set `targets` int64 [N, L], the
    next token to predict at each input position (NO_TARGET: no loss there), and `output_start` int64 [N], the
    first position whose target belongs to the output that exact match scores. Their `answers` are the decisive
    token (the question's first word, the main verb) predicted at `positions` int64 [N]; without `positions`
    the answer is predicted at the last real input position (`lengths - 1`)."""

    tokens: np.ndarray
    lengths: np.ndarray
    answers: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: np.ndarray | None = None
    targets: np.ndarray | None = None
    output_start: np.ndarray | None = None
    positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.answers)
        if self.tokens.ndim != 2 or len(self.tokens) != n or len(self.lengths) != n:
            raise ValueError("split arrays disagree in length")
        for name, col in self.fields.items():
            if len(col) != n:
                raise ValueError(f"field {name!r} has {len(col)} rows, expected {n}")
        if self.targets is not None and (self.targets.shape != self.tokens.shape or self.output_start is None):
            raise ValueError("targets must have the tokens' shape and come with output_start")
        for name in ("output_start", "positions"):
            col = getattr(self, name)
            if col is not None and len(col) != n:
                raise ValueError(f"{name} has {len(col)} rows, expected {n}")

    @property
    def answer_positions(self) -> np.ndarray:
        """Where each row's answer is predicted."""
        return self.lengths - 1 if self.positions is None else self.positions

    @property
    def is_sequence(self) -> bool:
        return self.targets is not None

    def __len__(self) -> int:
        return len(self.answers)

    def take(self, idx: np.ndarray) -> Split:
        """Rows `idx` as a new split (used to sample probes)."""
        return Split(
            tokens=self.tokens[idx],
            lengths=self.lengths[idx],
            answers=self.answers[idx],
            fields={k: v[idx] for k, v in self.fields.items()},
            kinds=None if self.kinds is None else self.kinds[idx],
            targets=None if self.targets is None else self.targets[idx],
            output_start=None if self.output_start is None else self.output_start[idx],
            positions=None if self.positions is None else self.positions[idx],
        )


# A probe's role: what the probe is for in a run. The word means this and nothing else (a logit-lens target, a
# perturbed token, a split's field are called so). Roles map onto probe names in TaskSpec.roles, TaskData.roles
# and summary.json's "roles".
ROLE_MEANINGS = {
    "train": "the training probe of fit detection",
    "test_id": "the in-distribution test; grok detection reads it unless the task names a grok role",
    "test_ood": "the out-of-distribution test (may be absent)",
    "grok": "the probe grok detection reads instead of test_id (comparison's OOD test, sequence tasks' gen)",
    "atomic_id": "knowledge bases: ID atomic facts, trained on; memorised too for fit",
    "atomic_ood": "knowledge bases: OOD atomic facts, trained on; memorised too for fit",
}
REQUIRED_ROLES = ("train", "test_id")  # every task names these, and their probes are never empty


@dataclass(frozen=True)
class TaskData:
    """Everything a run needs from a task. `roles` maps roles (ROLE_MEANINGS) onto probe names."""

    task: str
    vocab: Vocab
    train: Split
    probes: dict[str, Split]
    roles: dict[str, str]
    info: dict = field(default_factory=dict)

    @property
    def n_ctx(self) -> int:
        """Longest input, in tokens; the model's context must be at least this long."""
        lengths = [int(self.train.tokens.shape[1])] + [int(s.tokens.shape[1]) for s in self.probes.values()]
        return max(lengths)
