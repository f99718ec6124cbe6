"""Dyck-k completion, the bracket-language task of structural-grokking studies (Murty et al. 2023 use
Dyck-(20, 10)): given a prefix of a Dyck-k word with unmatched open brackets, output the closing sequence.

Sequence: `<prefix> close <closing brackets, innermost first> <eos>`. A prefix is a random walk over bracket
types: at depth 0 it opens, at `gen_max_depth` it closes, otherwise it opens or closes equally often; it
never ends at depth 0. Splits (decided here, documented in the config):
  train / test  prefixes whose deepest nesting is at most `train_max_depth` (test: held-out prefixes);
  gen           prefixes of the same lengths that nest deeper, up to `gen_max_depth` — structure never seen.
Decisive token: the first closing bracket (it closes the innermost unmatched bracket, so it needs the
nesting structure). `linear_answer`: the closer of the last opening bracket in the prefix — the linear
"close what was opened last" heuristic, wrong when that bracket is already matched; ABSENT (-1) where both agree.
Tree: a matched pair is a constituent (open, contents..., close), an unmatched one (open, contents...) up
to the end; constituents and top-level siblings are binarized right-branching: [a, b, c] -> (a (b c)).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from groklab.errors import UserError
from groklab.sizes import PYTHON_TOKEN_BYTES, DataSize
from groklab.tasks.dataset import TaskData
from groklab.tasks.knowledge import sample_probe, shuffled, split_sizes
from groklab.tasks.structural_split import (
    EOS,
    ROLES,
    Draws,
    Example,
    LossMode,
    Span,
    TreeBuilder,
    build_split,
    fill_buckets,
)
from groklab.tasks.vocab import build_layout

MARKER = "close"
MOVES = ("open", "close")  # drawn uniformly where both are allowed
MAX_DRAWS_PER_PREFIX = 50  # draws allowed per prefix asked for before the settings count as infeasible


def opener(k: int) -> str:
    return f"({k}"


def closer(k: int) -> str:
    return f"){k}"


@dataclass(frozen=True)
class DyckConfig:
    """Defaults: Dyck-4, prefixes of 4..24 brackets, training nesting at most 4, generalisation to 5..8."""

    task: str = "dyck"
    seed: int = 0  # data seed: the generator's own numpy Generator
    n_types: int = 4  # k, bracket types
    min_length: int = 4  # prefix length range, in brackets
    max_length: int = 24
    train_max_depth: int = 4  # deepest nesting in train and test prefixes
    gen_max_depth: int = 8  # gen prefixes nest deeper than train_max_depth, up to this
    n_train: int = 4000
    n_test: int = 500
    n_gen: int = 500
    loss_on: LossMode = "full"  # full: LM loss on the whole sequence (Murty et al.); output: only on the output
    probe_size: int = 500  # max examples per probe (0 = whole splits)

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): the prefixes as Python objects (with their trees) and one
        sequence each, prefix, marker, closing brackets and end token, plus the probes."""
        n_ctx = self.max_length + 2 + min(self.max_length, self.gen_max_depth)
        prefixes = self.n_train + self.n_test + self.n_gen
        return DataSize(rows=prefixes + 3 * self.probe_size, n_ctx=n_ctx, vocab=2 * self.n_types + 4,
                        knobs=("data.n_train", "data.max_length"),
                        scratch=prefixes * n_ctx * PYTHON_TOKEN_BYTES, sequence=True)

    def validate(self) -> None:
        if self.task != "dyck":
            raise UserError(f"data.task={self.task!r} does not match DyckConfig; use 'dyck'")
        for name in ("n_types", "min_length", "train_max_depth", "n_train", "n_test"):
            if getattr(self, name) < 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be >= 1")
        if self.n_gen < 0 or self.probe_size < 0:
            raise UserError(f"data.n_gen={self.n_gen} and data.probe_size={self.probe_size} must be >= 0")
        if self.max_length < self.min_length:
            raise UserError(f"data.max_length={self.max_length} must be >= data.min_length={self.min_length}")
        if self.gen_max_depth <= self.train_max_depth:
            raise UserError(
                f"data.gen_max_depth={self.gen_max_depth} must exceed data.train_max_depth={self.train_max_depth}"
            )
        if self.n_gen and self.max_length <= self.train_max_depth:
            raise UserError(
                f"data.max_length={self.max_length} cannot nest deeper than data.train_max_depth="
                f"{self.train_max_depth}; raise data.max_length or set data.n_gen=0"
            )


def random_prefix(draws: Draws, cfg: DyckConfig) -> tuple[str, ...]:
    """A bracket prefix ending with at least one unmatched bracket (see module docstring)."""
    while True:
        stack: list[int] = []
        tokens = []
        for _ in range(draws.between(cfg.min_length, cfg.max_length)):
            must_open = not stack
            if must_open or (len(stack) < cfg.gen_max_depth and MOVES[draws.pick(len(MOVES))] == "open"):
                stack.append(draws.pick(cfg.n_types))
                tokens.append(opener(stack[-1]))
            else:
                tokens.append(closer(stack.pop()))
        if stack:
            return tuple(tokens)


def parse(prefix: tuple[str, ...]) -> tuple[list[str], tuple[Span, ...]]:
    """(closing sequence innermost first, binary tree spans) of a prefix."""
    b = TreeBuilder()
    stack: list[tuple[str, list[Span]]] = []  # open bracket, constituents inside it so far
    top: list[Span] = []
    for token in prefix:
        span = b.leaf(token)
        if token.startswith("("):
            stack.append((token, [span]))
            continue
        _, parts = stack.pop()
        (stack[-1][1] if stack else top).append(b.chain([*parts, span]))
    closing = [closer(int(t[1:])) for t, _ in reversed(stack)]
    while stack:  # unmatched brackets, innermost first, span to the end of the prefix
        node = b.chain(stack.pop()[1])
        (stack[-1][1] if stack else top).append(node)
    b.chain(top)
    return closing, tuple(b.spans)


def nesting_depth(prefix: tuple[str, ...]) -> int:
    """The deepest nesting of a prefix (cheaper than `parse`, for routing every draw)."""
    depth = deepest = 0
    for token in prefix:
        depth += 1 if token.startswith("(") else -1
        deepest = max(deepest, depth)
    return deepest


def linear_closer(prefix: tuple[str, ...]) -> str:
    """The closer of the last opening bracket in the prefix, matched or not (the linear heuristic)."""
    last = next(t for t in reversed(prefix) if t.startswith("("))
    return closer(int(last[1:]))


def example(prefix: tuple[str, ...]) -> Example:
    closing, spans = parse(prefix)
    linear = linear_closer(prefix)
    return Example(prefix, MARKER, tuple(closing), 0, None if linear == closing[0] else linear, spans, MARKER)


def generate(cfg: DyckConfig) -> TaskData:
    """Distinct prefixes routed by nesting depth into train / test / gen; a pure function of `cfg`."""
    rng = np.random.default_rng(cfg.seed)
    draws = Draws(rng)
    quotas = {"train": cfg.n_train, "test": cfg.n_test, "gen": cfg.n_gen}
    buckets = fill_buckets(
        lambda: random_prefix(draws, cfg),
        lambda prefix: ("gen",) if nesting_depth(prefix) > cfg.train_max_depth else ("test", "train"),
        quotas,
        MAX_DRAWS_PER_PREFIX * sum(quotas.values()),
        cfg.task,
        "widen data.min_length..data.max_length or raise data.n_types",
    )
    brackets = [t for k in range(cfg.n_types) for t in (opener(k), closer(k))]
    layout = build_layout({"special": [EOS, MARKER], "bracket": brackets})
    encode = lambda name: build_split([example(p) for p in buckets[name]], layout.vocab.index(), EOS, cfg.loss_on)  # noqa: E731
    train = shuffled(rng, encode("train"))
    probes = {
        "train_sample": sample_probe(rng, train, cfg.probe_size),
        **{name: sample_probe(rng, encode(name), cfg.probe_size) for name in ("test", "gen")},
    }
    depths = {name: Counter(map(nesting_depth, b)) for name, b in buckets.items()}
    info = {
        "split_sizes": split_sizes(train, probes),
        "max_depth_counts": {name: {str(d): n for d, n in sorted(c.items())} for name, c in depths.items()},
        "vocab_size": len(layout.vocab),
    }
    return TaskData(cfg.task, layout.vocab, train, probes, dict(ROLES), info)
