"""Propositional logic: the truth value of a random formula under an assignment of its variables.

Input: the assignment's values, one per variable in variable order, then the formula in prefix (Polish)
notation, then `=`; the answer is `<true>` or `<false>`:

    <true> <false> <true> <implies> <x_0> <not> <x_1> =   ->   <true>        (x0 → ¬x1 at x0=1, x1=0, x2=1)

Prefix notation needs no brackets: each operator's arity fixes the parse. The assignment comes first so that,
under the causal mask, every variable of the formula can attend to its value. Answers are checkable by
evaluation (`evaluate`; tests/test_logic.py checks them with an evaluator of its own).

Depth: a variable has depth 0, an operator 1 + its deepest operand's. With n variables, ¬ and the three binary
operators ∧ ∨ →, the number of distinct formulas of depth ≤ d is A(0) = n, A(d) = n + A(d−1) + 3·A(d−1)²
(`formula_count`). For n = 3, exactly depth 0, 1, 2, 3: 3, 30, 3,270, 32,729,430; for n = 4: 4, 52, 9,412,
268,929,076. Distinct formulas, not distinct functions: `x0 ∧ x1` and `x1 ∧ x0` are two formulas.

Splits (a pure function of the config):
  train / test_id  every formula of depth ≤ `depth` is enumerated; depth-0 formulas (bare variables, the
                   "atomic facts") are all trained on; of the others a random `train_fraction` is trained on
                   and the rest is test_id. A formula goes to one side with all its assignments, so a test
                   formula is never seen in training under any assignment: train and test_id share no token
                   sequence.
  test_ood         ood = "depth": formulas of depth exactly `depth + 1`, drawn uniformly among all of them, one
                   random assignment each. Their inputs are longer than any training input, so they reach
                   positions whose embeddings training never updated: a length-generalisation test too.
                   ood = "assignment": the assignments with index ≥ 2^n − `ood_assignments` never appear in
                   training or test_id; test_ood is every ID formula under them (known formulas, unseen
                   combinations of variable values).
Label prior: ∨ and → are true on 3 of 4 operand pairs, ∧ on 1, so labels lean true (n = 3, depth ≤ 2: 66%
true). `balance` (default) drops random majority-label rows of each split until true and false are equal, so
the no-information accuracy is 0.5; summary.json's `no_information` gives it per probe either way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from groklab.errors import UserError
from groklab.sizes import PYTHON_TOKEN_BYTES, DataSize
from groklab.tasks.dataset import ABSENT, Split, TaskData
from groklab.tasks.knowledge import concat, make_split, sample_probe, shuffled, split_sizes
from groklab.tasks.vocab import Layout, build_layout

ROLES = {"train": "train_sample", "test_id": "test_id", "test_ood": "test_ood"}
MAX_FORMULAS = 100_000  # enumerated ID formulas at most (n = 4, depth 2: 9,468; n = 3, depth 3: 32.7M refused)

# operator -> (arity, truth table of the result from the operands' truth tables; `full` has every bit set).
# A truth table is an int whose bit k is the formula's value under assignment k. A lookup table, not if-chains.
OPERATORS = {
    "not": (1, lambda a, b, full: ~a & full),
    "and": (2, lambda a, b, full: a & b),
    "or": (2, lambda a, b, full: a | b),
    "implies": (2, lambda a, b, full: (~a | b) & full),
}
BINARY = tuple(op for op, (arity, _) in OPERATORS.items() if arity == 2)


@dataclass(frozen=True)
class LogicConfig:
    """Defaults: 3 variables, every formula of depth ≤ 2 (3,303), half of the non-trivial ones trained on."""

    task: str = "logic"
    seed: int = 0  # data seed: the generator's own numpy Generator (which formulas are training data)
    n_vars: int = 3  # variables x_0 .. x_{n-1}; 2^n assignments
    depth: int = 2  # ID formulas: every formula of depth 0..depth
    train_fraction: float = 0.5  # share of the ID formulas of depth >= 1 trained on (with all assignments)
    ood: Literal["depth", "assignment", "none"] = "depth"  # how test_ood differs from training (module doc)
    ood_assignments: int = 1  # ood = "assignment": how many assignments are held out
    balance: bool = True  # equal true / false rows in every split (no-information accuracy 0.5)
    probe_size: int = 3000  # max examples per probe (0 = whole splits; test_ood: 3000 when 0)

    @property
    def n_assignments(self) -> int:
        return 2**self.n_vars

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): every formula of depth ≤ depth (as Python tuples) under
        every assignment, the sampled deeper formulas of test_ood, and the probes; inputs are the assignment
        and the longest formula one deeper (a full binary tree: 2^(depth+2) − 1 symbols) and `=`."""
        n_ctx = self.n_vars + 2 ** (self.depth + 2)
        n_id = formula_count(self.n_vars, self.depth)
        n_ood = min(self.probe_size or 3000, formula_count(self.n_vars, self.depth + 1) - n_id)
        formulas = n_id + n_ood
        return DataSize(rows=n_id * self.n_assignments + n_ood + 3 * self.probe_size, n_ctx=n_ctx,
                        vocab=self.n_vars + 8, knobs=("data.probe_size", "data.depth"),
                        scratch=formulas * n_ctx * PYTHON_TOKEN_BYTES)

    def validate(self) -> None:
        if self.task != "logic":
            raise UserError(f"data.task={self.task!r} does not match LogicConfig; use 'logic'")
        if not 1 <= self.n_vars <= 6:
            raise UserError(f"data.n_vars={self.n_vars} must be in 1..6 (2^n assignments per formula)")
        if self.depth < 1:
            raise UserError(f"data.depth={self.depth} must be >= 1 (depth 0 formulas are bare variables)")
        if formula_count(self.n_vars, self.depth) > MAX_FORMULAS:
            raise UserError(
                f"data.depth={self.depth} with data.n_vars={self.n_vars} has "
                f"{formula_count(self.n_vars, self.depth):,} formulas, more than the {MAX_FORMULAS:,} enumerated at "
                "most; lower data.depth or data.n_vars"
            )
        if not 0 < self.train_fraction < 1:
            raise UserError(f"data.train_fraction={self.train_fraction} must be in (0, 1)")
        if self.ood == "assignment" and not 1 <= self.ood_assignments < self.n_assignments:
            raise UserError(
                f"data.ood_assignments={self.ood_assignments} must be in 1..{self.n_assignments - 1} "
                f"(2^n_vars = {self.n_assignments} assignments)"
            )
        if self.probe_size < 0:
            raise UserError(f"data.probe_size={self.probe_size} must be >= 0 (0 = whole splits)")


def formula_count(n_vars: int, depth: int) -> int:
    """Distinct formulas of depth ≤ `depth` over `n_vars` variables: A(0) = n, A(d) = n + A(d−1) + 3·A(d−1)²."""
    total = n_vars
    for _ in range(depth):
        total = n_vars + total + len(BINARY) * total * total
    return total


@dataclass(frozen=True)
class Formulas:
    """Formulas of one exact depth: prefix symbols (variable i is i, operator j is n_vars + j) and truth tables."""

    symbols: list[tuple[int, ...]]
    tables: list[int]

    def __len__(self) -> int:
        return len(self.symbols)

    def __add__(self, other: Formulas) -> Formulas:
        return Formulas(self.symbols + other.symbols, self.tables + other.tables)

    def take(self, idx: Iterable[int]) -> Formulas:
        idx = list(idx)
        return Formulas([self.symbols[i] for i in idx], [self.tables[i] for i in idx])


NO_OPERAND = Formulas([()], [0])  # a unary operator's second operand: no symbols (its table is not read)


def variable_tables(n_vars: int) -> list[int]:
    """Truth table of variable i: bit k is set when bit i of assignment k is."""
    return [sum(1 << k for k in range(2**n_vars) if k >> i & 1) for i in range(n_vars)]


def operator_blocks(levels: list[Formulas]) -> list[tuple[str, Formulas, Formulas]]:
    """The formulas of depth d = len(levels) as blocks (operator, first operands, second operands): ¬ of one of
    depth d−1, then per binary operator (exact d−1, any < d) and (any < d−1, exact d−1). The one order that
    `enumerate_formulas` lists them in and `sample_deeper` numbers them by."""
    top, below = levels[-1], sum(levels[1:], levels[0])
    lower = below.take(range(len(below) - len(top)))
    return [("not", top, NO_OPERAND)] + [(op, a, b) for op in BINARY for a, b in ((top, below), (lower, top))]


def combine(op: str, a: Formulas, b: Formulas, n_vars: int, pairs: list[tuple[int, int]]) -> Formulas:
    """The formulas `op a[i] b[j]` for (i, j) in `pairs`: prefix symbols and truth tables."""
    symbol, fn, full = n_vars + list(OPERATORS).index(op), OPERATORS[op][1], (1 << 2**n_vars) - 1
    return Formulas([(symbol, *a.symbols[i], *b.symbols[j]) for i, j in pairs],
                    [fn(a.tables[i], b.tables[j], full) for i, j in pairs])


def enumerate_formulas(n_vars: int, depth: int) -> list[Formulas]:
    """Every formula, by exact depth (element d: depth d), in `operator_blocks` order."""
    levels = [Formulas([(i,) for i in range(n_vars)], variable_tables(n_vars))]
    for _ in range(depth):
        level = Formulas([], [])
        for op, a, b in operator_blocks(levels):
            level += combine(op, a, b, n_vars, list(itertools.product(range(len(a)), range(len(b)))))
        levels.append(level)
    return levels


def sample_deeper(rng: np.random.Generator, levels: list[Formulas], n_vars: int, k: int) -> Formulas:
    """k distinct formulas of depth len(levels), uniformly among all of them (at most all of them): a formula
    number in 0..count−1 is decoded into (operator, operands) the way `enumerate_formulas` orders them."""
    blocks = operator_blocks(levels)
    sizes = [len(a) * len(b) for _, a, b in blocks]
    picks = np.sort(rng.choice(sum(sizes), size=min(k, sum(sizes)), replace=False))
    out = Formulas([], [])
    for (op, a, b), start, size in zip(blocks, np.cumsum([0] + sizes), sizes, strict=False):
        numbers = picks[(picks >= start) & (picks < start + size)] - start
        out += combine(op, a, b, n_vars, [divmod(int(number), len(b)) for number in numbers])
    return out


def evaluate(symbols: tuple[int, ...], values: tuple[bool, ...]) -> bool:
    """A prefix formula's value under `values` (one per variable), by recursive descent: the reference
    evaluation that the truth tables must agree with."""
    n_vars = len(values)
    names = list(OPERATORS)

    def parse(pos: int) -> tuple[bool, int]:
        s = symbols[pos]
        if s < n_vars:
            return values[s], pos + 1
        op = names[s - n_vars]
        a, pos = parse(pos + 1)
        if OPERATORS[op][0] == 1:
            return not a, pos
        b, pos = parse(pos)
        return {"and": a and b, "or": a or b, "implies": (not a) or b}[op], pos

    value, end = parse(0)
    if end != len(symbols):
        raise ValueError(f"trailing symbols after position {end}")
    return value


def examples(layout: Layout, f: Formulas, depth: int, n_vars: int, assignments: np.ndarray,
             per_formula: np.ndarray | None = None) -> Split:
    """Rows (formula, assignment) for every formula under every assignment in `assignments` (or, with
    `per_formula`, formula i under assignment per_formula[i] only)."""
    if per_formula is None:
        formula = np.repeat(np.arange(len(f)), len(assignments))
        assignment = np.tile(assignments, len(f))
    else:
        formula, assignment = np.arange(len(f)), per_formula
    width = max((len(s) for s in f.symbols), default=1)
    sym = np.full((len(f), width), ABSENT)
    for i, s in enumerate(f.symbols):
        sym[i, : len(s)] = s
    is_var = (sym >= 0) & (sym < n_vars)
    formula_ids = np.where(is_var, layout.ids("variable", np.clip(sym, 0, None)),
                           layout.ids("operator", np.clip(sym - n_vars, 0, None)))
    formula_ids = np.where(sym == ABSENT, ABSENT, formula_ids)[formula]
    values = assignment[:, None] >> np.arange(n_vars)[None, :] & 1
    truth = np.asarray(f.tables, dtype=np.int64)[formula] >> assignment & 1
    value_ids = layout.ids("value", values)
    answers = layout.ids("value", truth)
    eq = np.full((len(formula), 1), layout.offsets["eq"])
    # `=` right after each formula's last symbol: the ABSENT tail moves behind it
    inputs = np.concatenate([value_ids, formula_ids, np.full((len(formula), 1), ABSENT)], axis=1)
    ends = n_vars + (formula_ids != ABSENT).sum(axis=1)
    inputs[np.arange(len(formula)), ends] = eq[:, 0]
    fields = {"root": inputs[:, n_vars], "answer": answers}
    split = make_split(inputs, answers, fields, f"depth_{depth}")
    return split


def balanced(rng: np.random.Generator, split: Split, layout: Layout) -> Split:
    """Drop random rows of the more frequent answer until true and false are equally frequent (order kept)."""
    true = split.answers == layout.ids("value", 1)
    keep_true, keep_false = np.flatnonzero(true), np.flatnonzero(~true)
    n = min(len(keep_true), len(keep_false))
    pick = lambda idx: np.sort(rng.choice(idx, size=n, replace=False))  # noqa: E731
    return split.take(np.sort(np.concatenate([pick(keep_true), pick(keep_false)])))


def label_prior(split: Split, layout: Layout) -> float:
    return float(np.mean(split.answers == layout.ids("value", 1))) if len(split) else math.nan


def generate(cfg: LogicConfig) -> TaskData:
    """The logic dataset (module docstring), a pure function of `cfg` (same config → identical arrays)."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_vars
    layout = build_layout({
        "variable": [f"<x_{i}>" for i in range(n)],
        "operator": [f"<{op}>" for op in OPERATORS],
        "value": ["<false>", "<true>"],  # value index = truth value
        "eq": ["="],
    })
    levels = enumerate_formulas(n, cfg.depth)
    held_out = cfg.ood_assignments if cfg.ood == "assignment" else 0
    id_assignments = np.arange(cfg.n_assignments - held_out)
    train_parts, test_parts, ood_parts = [], [], []
    for d, level in enumerate(levels):
        in_train = np.ones(len(level), bool) if d == 0 else rng.random(len(level)) < cfg.train_fraction
        for mask, parts in ((in_train, train_parts), (~in_train, test_parts)):
            parts.append(examples(layout, level.take(np.flatnonzero(mask)), d, n, id_assignments))
        if held_out:
            ood_parts.append(examples(layout, level, d, n, np.arange(cfg.n_assignments - held_out, cfg.n_assignments)))
    ood_size = cfg.probe_size or 3000
    if cfg.ood == "depth":
        deeper = sample_deeper(rng, levels, n, ood_size)
        ood_parts.append(examples(layout, deeper, cfg.depth + 1, n, np.arange(cfg.n_assignments),
                                  per_formula=rng.integers(0, cfg.n_assignments, len(deeper))))
    train, test_id = concat(train_parts), concat(test_parts)
    test_ood = concat(ood_parts) if ood_parts else test_id.take(np.arange(0))
    splits = {"train": train, "test_id": test_id, "test_ood": test_ood}
    prior = {name: label_prior(split, layout) for name, split in splits.items()}
    if cfg.balance:
        train, test_id = balanced(rng, train, layout), balanced(rng, test_id, layout)
        test_ood = balanced(rng, test_ood, layout) if len(test_ood) else test_ood
    train = shuffled(rng, train)
    sampled = {"train_sample": train, "test_id": test_id, "test_ood": test_ood}
    probes = {name: sample_probe(rng, split, cfg.probe_size) for name, split in sampled.items()}
    info = {
        "formulas_per_depth": [len(level) for level in levels],
        "label_prior_true_before_balance": prior,
        "split_sizes": split_sizes(train, probes),
    }
    return TaskData("logic", layout.vocab, train, probes, dict(ROLES), info)
