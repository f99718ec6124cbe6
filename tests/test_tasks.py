"""The data design's invariants (science.md §1-3, §7): exact split sizes, disjoint splits, no OOD fact as a hop of a
training inferred fact, answers that follow from the atomic facts, derivable-but-hard complex test queries,
correct operation tables, and determinism. Small knowledge bases (|E| = 100) keep the file fast."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from groklab.errors import UserError
from groklab.tasks import TASKS, generate
from groklab.tasks.comparison import ComparisonConfig
from groklab.tasks.complex import ComplexConfig
from groklab.tasks.composition import CompositionConfig
from groklab.tasks.dataset import PAD, Split
from groklab.tasks.modular import ModularConfig

SMALL = {
    "composition": CompositionConfig(n_entities=100, phi=9.0, probe_size=0),
    "comparison": ComparisonConfig(n_entities=100, phi=7.2, probe_size=0),
    "complex": ComplexConfig(n_entities=100, n_test_per_label=5, probe_size=0),
    "modular": ModularConfig(modulus=23),
}


@pytest.fixture(scope="module")
def small():
    return {task: generate(cfg) for task, cfg in SMALL.items()}


def rows(split: Split, *names: str) -> set[tuple]:
    return set(zip(*(split.fields[n].tolist() for n in names), strict=True))


def of_kind(split: Split, kind: str) -> Split:
    return split.take(np.flatnonzero(split.kinds == kind))


def number(data, token_id: int) -> int:
    """The number a value token `<7>` stands for."""
    return int(data.vocab.tokens[token_id].strip("<>"))


# ---- every task -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SMALL))
def test_splits_are_well_formed(small, task):
    data = small[task]
    assert data.vocab.tokens[0] == PAD and data.task == task
    assert set(data.roles) <= {"train", "test_id", "test_ood", "grok", "atomic_id", "atomic_ood"}
    assert set(data.roles.values()) <= set(data.probes)
    for split in [data.train, *data.probes.values()]:
        n, width = split.tokens.shape
        assert width == data.n_ctx and split.kinds.shape == (n,)
        assert np.all((split.lengths >= 2) & (split.lengths <= width))
        real = np.arange(width)[None, :] < split.lengths[:, None]
        assert np.all(split.tokens[real] > 0) and np.all(split.tokens[~real] == 0)  # right-padded, no pad inside
        assert np.all(split.answers > 0) and np.array_equal(split.fields["answer"], split.answers)
        assert split.tokens.max() < len(data.vocab)


@pytest.mark.parametrize("task", list(SMALL))
def test_same_seed_same_data_other_seed_other_data(small, task):
    again, other = generate(SMALL[task]), generate(TASKS[task].config(**{**SMALL[task].__dict__, "seed": 1}))
    for a, b in [(small[task].train, again.train), *((small[task].probes[k], again.probes[k]) for k in again.probes)]:
        assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.answers, b.answers)
        assert all(np.array_equal(a.fields[f], b.fields[f]) for f in a.fields)
    assert not np.array_equal(small[task].train.tokens, other.train.tokens)


def test_registry_dispatches_and_refuses_unknown_tasks():
    assert set(TASKS) == {
        "composition", "comparison", "complex", "modular", "question-formation", "tense-inflection", "dyck", "logic"
    }
    for name, spec in TASKS.items():
        assert spec.config().task == name
    with pytest.raises(UserError, match="unknown"):
        generate(CompositionConfig(task="bogus"))


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        (CompositionConfig(relations_per_entity=30, n_relations=20), "exceeds data.n_relations"),
        (CompositionConfig(phi=19.5), "phi <= 18.9"),
        (ComparisonConfig(n_entities=10, phi=20.0), "phi <= 7.2"),
        (ComparisonConfig(ood_fraction=1.5), "ood_fraction"),
        (ComplexConfig(n_entities=10), "OOD–OOD test queries need at least 2"),
        (ModularConfig(operation="/", modulus=12), "must be prime"),
        (ModularConfig(train_fraction=1.0), "train_fraction"),
    ],
)
def test_impossible_settings_are_user_errors(cfg, needle):
    with pytest.raises(UserError, match=needle):
        cfg.validate()


# ---- composition (science.md §1) ------------------------------------------------------------------------


def test_composition_sizes_follow_the_formulas(small):
    cfg, data = SMALL["composition"], small["composition"]
    info, n_atomic = data.info, 100 * 20
    assert (info["n_atomic"], info["n_atomic_ood"], info["n_atomic_id"]) == (n_atomic, 100, 1900)
    assert info["n_train_inferred"] == round(cfg.phi * 1900) == len(of_kind(data.train, "inferred"))
    assert len(data.train) == n_atomic + info["n_train_inferred"]
    assert info["n_chains"] == 100 * 20 * 20
    parts = info["n_pool"] + info["n_test_inferred_id"] + info["n_test_inferred_ood"] + info["n_dropped_mixed"]
    assert parts == info["n_chains"]
    assert len(data.vocab) == 1 + 100 + 200


def test_composition_ood_atomic_repeat_adds_only_ood_atomic_copies(small):
    """The deviation data.ood_atomic_repeat=k shows each OOD atomic fact k times an epoch and changes nothing
    else: the same facts, the same probes, ID atomic facts once."""
    plain = small["composition"]
    data = generate(dataclasses.replace(SMALL["composition"], ood_atomic_repeat=4))
    assert len(data.train) == len(plain.train) + 3 * 100
    atomic = of_kind(data.train, "atomic")
    counts = collections.Counter(zip(atomic.fields["head"].tolist(), atomic.fields["r1"].tolist(), strict=True))
    ood = rows(plain.probes["ood_atomic"], "head", "r1")
    assert {counts[f] for f in ood} == {4} and {c for f, c in counts.items() if f not in ood} == {1}
    assert rows(of_kind(data.train, "inferred"), "head", "r1", "r2") == rows(
        of_kind(plain.train, "inferred"), "head", "r1", "r2"
    )
    for name, probe in plain.probes.items():
        assert np.array_equal(probe.tokens, data.probes[name].tokens), name
    with pytest.raises(UserError, match="ood_atomic_repeat"):
        CompositionConfig(ood_atomic_repeat=0).validate()


def test_composition_paper_size_counts():
    """science.md §1: |E|=2000, |R|=200 → 40,000 atomic facts; φ=7.2 → 273,600 inferred facts in training."""
    data = generate(CompositionConfig())
    assert data.info["n_atomic"] == 40_000 and data.info["n_atomic_id"] == 38_000
    assert data.info["n_train_inferred"] == 273_600 and len(data.train) == 313_600
    assert {len(p) for p in data.probes.values()} == {3000, 2000, data.info["n_test_inferred_ood"]}


def test_composition_graph_shape(small):
    atomic = of_kind(small["composition"].train, "atomic")
    heads, relations = atomic.fields["head"], atomic.fields["r1"]
    assert len(rows(atomic, "head", "r1")) == len(atomic)  # relations are partial functions
    assert np.all(np.unique(heads, return_counts=True)[1] == 20)  # 20 distinct relations per head
    assert len(np.unique(relations)) > 20


def test_composition_answers_compose_atomic_facts(small):
    data = small["composition"]
    tail = {(h, r): t for h, r, t in rows(of_kind(data.train, "atomic"), "head", "r1", "answer")}
    for name, split in [("train", data.train), *data.probes.items()]:
        inferred = of_kind(split, "inferred")
        for h, r1, r2, b, t in rows(inferred, "head", "r1", "r2", "bridge", "answer"):
            assert tail[(h, r1)] == b and tail[(b, r2)] == t, name
        assert np.array_equal(inferred.tokens[:, :3], np.stack([inferred.fields[k] for k in ("head", "r1", "r2")], 1))


def test_composition_splits_are_disjoint_and_respect_ood(small):
    data = small["composition"]
    ood = rows(data.probes["ood_atomic"], "head", "r1", "answer")  # probe_size=0: every OOD fact
    assert len(ood) == 100 and not ood & rows(data.probes["id_atomic"], "head", "r1", "answer")

    def hops(split: Split) -> list[tuple[bool, bool]]:
        """(first hop is OOD, second hop is OOD) per inferred fact."""
        facts = rows(split, "head", "r1", "r2", "bridge", "answer")
        return [((h, r1, b) in ood, (b, r2, t) in ood) for h, r1, r2, b, t in facts]

    assert not any(a or b for a, b in hops(of_kind(data.train, "inferred")))  # no OOD fact is ever a hop
    assert not any(a or b for a, b in hops(data.probes["test_inferred_id"]))
    assert all(a and b for a, b in hops(data.probes["test_inferred_ood"]))
    queries = {name: rows(data.probes[name], "head", "r1", "r2") for name in ("test_inferred_id", "test_inferred_ood")}
    train = rows(of_kind(data.train, "inferred"), "head", "r1", "r2")
    assert not train & queries["test_inferred_id"] and not train & queries["test_inferred_ood"]
    assert not queries["test_inferred_id"] & queries["test_inferred_ood"]
    assert rows(data.probes["train_inferred"], "head", "r1", "r2") <= train


# ---- comparison (science.md §2) -------------------------------------------------------------------------


def ood_entities(data) -> dict[int, set[int]]:
    """attribute token -> its OOD entity tokens (the ood_atomic probe is whole at probe_size=0)."""
    out: dict[int, set[int]] = {}
    for attr, e in rows(data.probes["ood_atomic"], "attribute", "entity"):
        out.setdefault(attr, set()).add(e)
    return out


def test_comparison_partition_is_fresh_per_attribute(small):
    data = small["comparison"]
    ood = ood_entities(data)
    assert len(ood) == 20 and all(len(s) == 10 for s in ood.values())
    assert len({frozenset(s) for s in ood.values()}) > 1
    assert len(data.probes["id_atomic"]) == 1800 and len(of_kind(data.train, "atomic")) == 2000


def test_comparison_sizes_labels_and_disjointness(small):
    cfg, data = SMALL["comparison"], small["comparison"]
    ood, vocab = ood_entities(data), data.vocab.tokens
    value = {(e, a): v for e, a, v in rows(of_kind(data.train, "atomic"), "entity", "attribute", "value")}
    assert data.info["n_train_inferred"] == round(cfg.phi * 1800) == len(of_kind(data.train, "inferred"))
    assert data.info["n_test_inferred_ood"] == 20 * 10 * 9 == len(data.probes["test_inferred_ood"])
    splits = {
        "train": of_kind(data.train, "inferred"),
        **{k: data.probes[k] for k in ("test_inferred_id", "test_inferred_ood")},
    }
    n_ood = {"train": 0, "test_inferred_id": 0, "test_inferred_ood": 2}
    for name, split in splits.items():
        for a, e1, e2, v1, v2, label in rows(split, "attribute", "e1", "e2", "v1", "v2", "answer"):
            assert e1 != e2 and (v1, v2) == (value[(e1, a)], value[(e2, a)])
            sign = np.sign(number(data, v1) - number(data, v2))
            assert vocab[label] == f"{vocab[a][:-1]}_{sign + 1}>"
            assert (e1 in ood[a]) + (e2 in ood[a]) == n_ood[name]
    pairs = lambda s: {(a, min(e1, e2), max(e1, e2)) for a, e1, e2 in rows(s, "attribute", "e1", "e2")}  # noqa: E731
    assert not pairs(of_kind(data.train, "inferred")) & pairs(data.probes["test_inferred_id"])  # no flipped leak


# ---- complex reasoning (science.md §3) ------------------------------------------------------------------


def closure(adj: np.ndarray) -> np.ndarray:
    """Transitive closure of a boolean adjacency matrix, by repeated squaring."""
    reach = adj.copy()
    while True:
        grown = reach | ((reach.astype(np.int32) @ reach.astype(np.int32)) > 0)
        if np.array_equal(grown, reach):
            return reach
        reach = grown


def test_complex_training_has_no_ood_atomic_facts_and_the_paper_sizes(small):
    cfg, data = SMALL["complex"], small["complex"]
    trained = rows(of_kind(data.train, "atomic"), "entity", "attribute")
    assert not trained & rows(data.probes["ood_atomic"], "entity", "attribute") and len(trained) == 1800
    info = data.info
    assert info["n_train_id_id"] == round(cfg.id_id_fraction * info["n_pool_id_id"])
    assert info["n_train_id_ood"] == round(cfg.id_ood_fraction * info["n_id_ood"]) and info["n_id_ood"] == 20 * 2 * 900
    assert len(data.train) == 1800 + info["n_train_id_id"] + info["n_train_id_ood"]


def test_complex_test_queries_are_derivable_but_not_from_comparisons_alone(small):
    data = small["complex"]
    test, ood = data.probes["test_inferred"], ood_entities(data)
    labels = [data.vocab.tokens[t][-2] for t in test.answers]  # <attr_a_c>: c = 0 (<), 1 (=), 2 (>)
    assert len(test) == 15 and all(labels.count(c) == 5 for c in "012")
    value = {(e, a): v for e, a, v in rows(data.probes["ood_atomic"], "entity", "attribute", "value")}
    value |= {(e, a): v for e, a, v in rows(of_kind(data.train, "atomic"), "entity", "attribute", "value")}
    comparisons = of_kind(data.train, "inferred")
    assert not rows(test, "attribute", "e1", "e2") & rows(comparisons, "attribute", "e1", "e2")
    n_tok = len(data.vocab)
    for a, e1, e2, label in rows(test, "attribute", "e1", "e2", "answer"):
        assert e1 in ood[a] and e2 in ood[a]
        facts = np.zeros((n_tok, n_tok), dtype=bool)  # facts[x, y]: x ≥ y, from training comparisons
        for _, x, y, c in [r for r in rows(comparisons, "attribute", "e1", "e2", "answer") if r[0] == a]:
            side = data.vocab.tokens[c][-2]
            facts[x, y] |= side in "12"
            facts[y, x] |= side in "01"
        with_values = facts.copy()
        known = [(e, v) for (e, attr), v in value.items() if attr == a and e not in ood[a]]
        for x, vx in known:
            for y, vy in known:
                with_values[x, y] |= vx >= vy  # value tokens are in value order
        easy, full = closure(facts), closure(with_values)
        assert not easy[e1, e2] and not easy[e2, e1]
        truth = np.sign(number(data, value[(e1, a)]) - number(data, value[(e2, a)]))
        derived = {(True, True): 0, (True, False): 1, (False, True): -1}[(bool(full[e1, e2]), bool(full[e2, e1]))]
        assert derived == truth and data.vocab.tokens[label].endswith(f"_{truth + 1}>")


@pytest.mark.slow
def test_comparison_and_complex_paper_size_counts():
    """science.md §2-3: 20,000 atomic facts; complex training 18K + 3% of ID–ID (437K) + 3% of ID–OOD (108K)."""
    comparison = generate(ComparisonConfig())
    assert comparison.info["n_atomic"] == 20_000 and comparison.info["n_train_inferred"] == 129_600
    complex_ = generate(ComplexConfig())
    assert complex_.info["n_train_id_ood"] == 108_000 and abs(complex_.info["n_train_id_id"] - 437_000) < 2_000
    assert abs(len(complex_.train) - 563_000) < 2_000 and len(complex_.probes["test_inferred"]) == 150


# ---- modular arithmetic (science.md §7-8) ---------------------------------------------------------------


EXPECTED = {
    "+": lambda x, y, p: (x + y) % p,
    "-": lambda x, y, p: (x - y) % p,
    "*": lambda x, y, p: (x * y) % p,
    "/": lambda x, y, p: (x * pow(y, -1, p)) % p,  # Python's own modular inverse, independent of ours
}


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_modular_tables_are_correct_and_split_in_two(op):
    p = 23
    data = generate(ModularConfig(modulus=p, operation=op))
    num = lambda ids: [int(data.vocab.tokens[i]) for i in ids]  # noqa: E731
    train, valid = data.probes["train_sample"], data.probes["valid"]
    table = set()
    for split in (train, valid):
        for x, y, z in zip(num(split.fields["x"]), num(split.fields["y"]), num(split.answers), strict=True):
            assert z == EXPECTED[op](x, y, p)
            table.add((x, y))
    size = p * (p - 1) if op in "*/" else p * p
    assert len(table) == size == len(train) + len(valid) and len(train) == round(0.5 * size)
    assert [data.vocab.tokens[t] for t in data.train.tokens[0]][1::2] == [op, "="]


def test_modular_grokfast_setting_has_9312_equations():
    data = generate(ModularConfig())
    assert data.info["table_size"] == 9_312 and len(data.train) == 4_656 and len(data.probes["valid"]) == 4_656


def test_empty_probes_are_dropped_with_their_role():
    data = generate(CompositionConfig(n_entities=50, ood_fraction=0.0, phi=3.0))
    assert "test_inferred_ood" not in data.probes and "test_ood" not in data.roles
    with pytest.raises(UserError, match="test_id probe 'test_inferred_id' is empty"):
        generate(CompositionConfig(n_entities=50, test_id_prob=0.0, phi=3.0))
