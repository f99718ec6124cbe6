"""Sequence examples of the structural-grokking tasks (Murty et al. 2023) as a `Split`, and the seeded draws
and tree bookkeeping the generators share.

One example is one language-model sequence: `<input sentence> <marker> <output sentence> <eos>`. The split
holds it without its last token (`tokens`) and the next token at each position (`targets`), so
target[t] = sequence[t + 1]. The marker sits at `output_start`: the position whose target is the output's
first token. `loss_on` decides which real positions carry a loss (padding never does):
  "full"   every real position, as Murty et al. train plain language models on the whole sequence;
  "output" only output_start .. length - 1 (the output and its <eos>), a sequence-to-sequence loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from groklab.errors import UserError
from groklab.tasks.dataset import ABSENT, NO_TARGET, Split

# ABSENT: no linear answer differing from the hierarchical one, tree rows past n - 1; NO_TARGET: no loss there
ROLES = {"train": "train_sample", "test_id": "test", "test_ood": "gen", "grok": "gen"}  # grok on gen
EOS = "<eos>"
LossMode = Literal["full", "output"]  # a config's loss_on (see above)
DRAW_BLOCK = 4096  # uniform numbers fetched from the generator at a time (one call per scalar is slow)

Span = tuple[int, int]  # inclusive token positions of a constituent


class Draws:
    """Seeded categorical choices read off a buffer of uniforms: the same generator gives the same choices,
    and drawing in bulk keeps sentence generation well under a second."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.buffer, self.next = rng, np.empty(0), 0

    def pick(self, n: int) -> int:
        """A uniform integer in 0..n-1."""
        if self.next == len(self.buffer):
            self.buffer, self.next = self.rng.random(DRAW_BLOCK), 0
        u = self.buffer[self.next]
        self.next += 1
        return int(u * n)

    def between(self, low: int, high: int) -> int:
        """A uniform integer in low..high (inclusive)."""
        return low + self.pick(high - low + 1)


class TreeBuilder:
    """Builds a token list and its binary tree at once: `leaf` appends a token, `join` makes the internal
    node over two adjacent constituents and records its span."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.spans: list[Span] = []

    def leaf(self, token: str) -> Span:
        self.tokens.append(token)
        return (len(self.tokens) - 1, len(self.tokens) - 1)

    def join(self, left: Span, right: Span) -> Span:
        assert left[1] + 1 == right[0], "constituents must be adjacent"
        span = (left[0], right[1])
        self.spans.append(span)
        return span

    def chain(self, parts: list[Span]) -> Span:
        """An n-ary constituent binarized right-branching: [a, b, c] -> (a (b c))."""
        node = parts[-1]
        for part in reversed(parts[:-1]):
            node = self.join(part, node)
        return node


@dataclass(frozen=True)
class Example:
    """One sequence before encoding. `decisive` indexes `output`; `linear` is the token the linear rule puts
    there, or None where it agrees with the hierarchical rule (or has no say)."""

    source: tuple[str, ...]
    marker: str
    output: tuple[str, ...]
    decisive: int
    linear: str | None
    spans: tuple[Span, ...]
    kind: str


def build_split(examples: list[Example], index: dict[str, int], eos: str, loss_on: str) -> Split:
    """Encode examples as a sequence Split (see module docstring); fields `linear_answer`, `sentence_length`
    and `tree` [N, max sentence length - 1, 2] of inclusive spans, rows padded with ABSENT."""
    sequences = [[*e.source, e.marker, *e.output, eos] for e in examples]
    lengths = np.array([len(s) - 1 for s in sequences], dtype=np.int64)
    width = int(lengths.max(initial=1))
    full = np.zeros((len(examples), width + 1), dtype=np.int64)
    for row, seq in enumerate(sequences):
        full[row, : len(seq)] = [index[t] for t in seq]
    n_source = np.array([len(e.source) for e in examples], dtype=np.int64)
    start = n_source  # the marker's position predicts the output's first token
    pos = np.arange(width)[None, :]
    first_loss = start[:, None] if loss_on == "output" else 0
    has_loss = (pos < lengths[:, None]) & (pos >= first_loss)
    tree = np.full((len(examples), max(int(n_source.max(initial=1)) - 1, 1), 2), ABSENT, dtype=np.int64)
    for row, e in enumerate(examples):
        tree[row, : len(e.spans)] = e.spans
    return Split(
        tokens=np.where(pos < lengths[:, None], full[:, :width], 0),  # the final <eos> is only a target
        lengths=lengths,
        answers=np.array([index[e.output[e.decisive]] for e in examples], dtype=np.int64),
        fields={
            "linear_answer": np.array(
                [ABSENT if e.linear is None else index[e.linear] for e in examples], dtype=np.int64
            ),
            "sentence_length": n_source,
            "tree": tree,
        },
        kinds=np.array([e.kind for e in examples], dtype=str),
        targets=np.where(has_loss, full[:, 1:], NO_TARGET),
        output_start=start,
        positions=start + np.array([e.decisive for e in examples], dtype=np.int64),
    )


def fill_buckets(draw, route, quotas: dict[str, int], max_draws: int, task: str, fix: str) -> dict[str, list]:
    """Distinct draws, each put in the first bucket of `route(item)` that still has room, until every bucket
    holds its quota. Items are hashable (tuples of tokens). A UserError naming the short bucket when
    `max_draws` draws cannot fill it (the grammar is too small for the sizes asked)."""
    buckets: dict[str, list] = {name: [] for name in quotas}
    seen: set = set()
    for _ in range(max_draws):
        if all(len(buckets[name]) == quota for name, quota in quotas.items()):
            return buckets
        item = draw()
        if item in seen:
            continue
        seen.add(item)
        room = [name for name in route(item) if len(buckets[name]) < quotas[name]]
        if room:
            buckets[room[0]].append(item)
    short = next((n for n, q in quotas.items() if len(buckets[n]) < q), None)
    if short is not None:
        raise UserError(
            f"{task}: only {len(buckets[short]):,} distinct {short} sentences in {max_draws:,} draws, "
            f"data.n_{short}={quotas[short]:,} asked; lower data.n_{short} or {fix}"
        )
    return buckets
