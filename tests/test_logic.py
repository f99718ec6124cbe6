"""The logic task: every answer checked by an evaluator written here, formula counts, disjoint splits."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest

from groklab.cli import main
from groklab.errors import UserError
from groklab.tasks import generate
from groklab.tasks.io import load_dataset
from groklab.tasks.logic import LogicConfig, enumerate_formulas, formula_count

# this test's own reading of the tokens: arity and truth function per operator token
OPS = {"<not>": (1, lambda a: not a), "<and>": (2, lambda a, b: a and b), "<or>": (2, lambda a, b: a or b),
       "<implies>": (2, lambda a, b: (not a) or b)}


def evaluate(tokens: list[str]) -> bool:
    """`<true>/<false>` × n, a prefix formula, `=`: parse the formula recursively and evaluate it."""
    values = []
    while tokens[len(values)] in ("<true>", "<false>"):
        values.append(tokens[len(values)] == "<true>")
    assert tokens[-1] == "="
    formula = tokens[len(values):-1]

    def parse(pos: int) -> tuple[bool, int]:
        token = formula[pos]
        if token.startswith("<x_"):
            return values[int(token[3:-1])], pos + 1
        arity, fn = OPS[token]
        args = []
        pos += 1
        for _ in range(arity):
            value, pos = parse(pos)
            args.append(value)
        return fn(*args), pos

    value, end = parse(0)
    assert end == len(formula), "trailing tokens"
    return value


def rows(data, split) -> list[tuple[str, ...]]:
    return [tuple(data.vocab.tokens[t] for t in split.tokens[i, : split.lengths[i]]) for i in range(len(split))]


def formula_part(tokens: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in tokens if t not in ("<true>", "<false>"))


@pytest.fixture(scope="module", params=["depth", "assignment"])
def data(request):
    return generate(LogicConfig(ood=request.param, probe_size=0))


def test_every_answer_matches_an_independent_evaluation(data):
    for split in [data.train, *data.probes.values()]:
        answers = [data.vocab.tokens[a] for a in split.answers]
        assert all(evaluate(list(r)) == (a == "<true>") for r, a in zip(rows(data, split), answers, strict=True))


def test_splits_are_disjoint_and_test_formulas_are_unseen(data):
    train = set(rows(data, data.train))
    test_id, test_ood = set(rows(data, data.probes["test_id"])), set(rows(data, data.probes["test_ood"]))
    assert len(train) == len(data.train)  # no duplicate rows
    assert not train & test_id and not train & test_ood and not test_id & test_ood
    train_formulas = {formula_part(r) for r in train}
    assert not train_formulas & {formula_part(r) for r in test_id}  # a test formula is never trained on


def test_ood_kinds(data):
    ood = data.probes["test_ood"]
    if data.info["label_prior_true_before_balance"]["test_ood"] > 0.8:  # assignment: the held-out all-true one
        assert all(r[:3] == ("<true>",) * 3 for r in rows(data, ood))
        assert not any(r[:3] == ("<true>",) * 3 for r in rows(data, data.train))
    else:
        assert set(ood.kinds) == {"depth_3"} and set(data.train.kinds) == {"depth_0", "depth_1", "depth_2"}


def test_balanced_labels_and_the_prior_is_reported(data):
    true = data.vocab.index()["<true>"]
    assert np.mean(data.train.answers == true) == 0.5
    assert 0.6 < data.info["label_prior_true_before_balance"]["train"] < 0.7  # ∨ and → lean true


def test_formula_counts_agree_with_a_brute_force_enumeration():
    def every(n: int, depth: int) -> set:  # nested tuples, built independently of the module's enumeration
        if depth == 0:
            return {("x", i) for i in range(n)}
        below = every(n, depth - 1)
        out = set(below) | {("not", a) for a in below}
        return out | {(op, a, b) for op in ("and", "or", "implies") for a, b in itertools.product(below, below)}

    for n, depth in ((1, 2), (2, 2), (3, 2)):
        assert len(every(n, depth)) == formula_count(n, depth) == sum(len(x) for x in enumerate_formulas(n, depth))
    assert formula_count(3, 3) - formula_count(3, 2) == 32_729_430  # the docstring's count


def test_same_config_same_data_and_seeds_differ():
    a, b, c = generate(LogicConfig()), generate(LogicConfig()), generate(LogicConfig(seed=1))
    assert np.array_equal(a.train.tokens, b.train.tokens) and np.array_equal(a.train.answers, b.train.answers)
    assert not np.array_equal(a.train.tokens[:50], c.train.tokens[:50])


def test_too_many_formulas_is_refused():
    with pytest.raises(UserError, match="lower data.depth"):
        generate(LogicConfig(depth=3))


def test_data_command_writes_a_dataset_that_loads_back(tmp_path, capsys):
    assert main(["data", "logic", "--out", str(tmp_path / "logic"), "--set", "n_vars=2"]) == 0
    loaded, made = load_dataset(tmp_path / "logic"), generate(LogicConfig(n_vars=2))
    assert loaded.vocab == made.vocab and loaded.roles == made.roles
    assert rows(loaded, loaded.train) == rows(made, made.train)
    assert np.array_equal(loaded.probes["test_ood"].answers, made.probes["test_ood"].answers)


def spelled_digest(data) -> str:
    """sha256 of every split spelled as tokens (rows, answers, kinds, fields) and the info: platform-independent."""
    spell = lambda ids: [data.vocab.tokens[i] if i >= 0 else None for i in ids.tolist()]  # noqa: E731
    text = json.dumps({name: [[spell(s.tokens[i, : s.lengths[i]]) for i in range(len(s))], spell(s.answers),
                              s.kinds.tolist(), {k: spell(v) for k, v in sorted(s.fields.items())}]
                       for name, s in {"train": data.train, **data.probes}.items()} | {"info": data.info},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("settings", "digest"),
    [
        ({}, "0ee03e7dfb3216a5d3e681ea54005df2c110f2fb4c6f71c91651b88c7b3079a2"),
        ({"ood": "assignment", "n_vars": 2, "ood_assignments": 3, "probe_size": 0, "balance": False},
         "31bd234ae9d4a63f6aab5f8f83f85424f2e659e057d7fc1aa6db99c288209c11"),
    ],
)
def test_generated_data_is_pinned(settings, digest):
    """The data of a config never changes under a refactor (recorded before the curriculum code's clean-up):
    runs and their results name configs, not datasets. A deliberate change updates these digests."""
    assert spelled_digest(generate(LogicConfig(**settings))) == digest
