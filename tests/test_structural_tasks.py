"""Structural-grokking data (question formation, tense inflection, Dyck): every sentence parses under an
independent recursive-descent parser of McCoy et al.'s fragment with the gold tree as its parse; the
transformations match hand-built examples and the parser's own; training never separates the hierarchical
from the linear rule while every gen example does; the sequence encoding is exact; same config → same data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from groklab import config
from groklab.errors import UserError
from groklab.tasks import TASKS, generate
from groklab.tasks.dataset import TaskData
from groklab.tasks.dyck import DyckConfig
from groklab.tasks.grammar import (
    AUXILIARIES,
    DETERMINERS,
    NOUNS,
    PLURAL,
    PREPOSITIONS,
    RELATIVIZERS,
    SINGULAR,
    TRANSITIVE,
    Lexicon,
    Sentence,
    hierarchical_present,
    hierarchical_question,
    linear_present,
    linear_question,
)
from groklab.tasks.io import write_dataset
from groklab.tasks.structural import QuestionFormationConfig, TenseInflectionConfig

SMALL = {"n_train": 300, "n_test": 100, "n_gen": 100, "probe_size": 0}
CONFIGS = {
    "question-formation": QuestionFormationConfig(**SMALL),
    "tense-inflection": TenseInflectionConfig(**SMALL),
    "dyck": DyckConfig(n_train=300, n_test=100, n_gen=100, probe_size=0),
}
NUMBER = {form: number for noun in NOUNS for number, form in enumerate(noun)}
AUX_NUMBER = {aux: number for number, pair in AUXILIARIES.items() for aux in pair}
PAST = {verb[2]: verb for verb in Lexicon.sized(len(NOUNS), len(TRANSITIVE)).verb_forms().values()}
BARE = {verb[0] for verb in PAST.values()}
TRANSITIVE_FORMS = {form for verb in TRANSITIVE for form in verb}


@pytest.fixture(scope="module")
def data() -> dict[str, TaskData]:
    return {task: generate(cfg) for task, cfg in CONFIGS.items()}


def splits(d: TaskData):
    return [("train_split", d.train), *d.probes.items()]


def words(d: TaskData, split, row: int, start: int, stop: int) -> tuple[str, ...]:
    return tuple(d.vocab.tokens[t] for t in split.tokens[row, start:stop])


def source(d: TaskData, split, row: int) -> tuple[str, ...]:
    return words(d, split, row, 0, int(split.fields["sentence_length"][row]))


# ---- an independent parser of the fragment -------------------------------------------------------------


class Parser:
    """Recursive descent over McCoy et al.'s fragment. Records the binary constituents, the main
    auxiliary / verb, every verb's subject number, and fails on any agreement or depth violation."""

    def __init__(self, tokens: tuple[str, ...], tense: bool, max_depth: int) -> None:
        self.t, self.i, self.tense, self.max_depth = tokens, 0, tense, max_depth
        self.spans: set[tuple[int, int]] = set()
        self.subject_of: dict[int, int] = {}  # verb position -> subject number (tense)

    def eat(self, allowed) -> int:
        assert self.i < len(self.t) and self.t[self.i] in allowed, (self.t, self.i)
        self.i += 1
        return self.i - 1

    def node(self, start: int) -> tuple[int, int]:
        self.spans.add((start, self.i - 1))
        return (start, self.i - 1)

    def sentence(self) -> int:
        number = self.np(0)
        main = self.vp(number, 0)
        self.node(0)
        self.eat({"."})
        self.node(0)
        assert self.i == len(self.t)
        return main

    def np(self, depth: int) -> int:
        start = self.eat(DETERMINERS)
        number = NUMBER[self.t[self.eat(NUMBER)]]
        self.node(start)
        following = self.t[self.i] if self.i < len(self.t) else None
        if following in PREPOSITIONS or following in RELATIVIZERS:
            assert depth < self.max_depth, "modifier deeper than max_depth"
            inner = self.i
            if following in PREPOSITIONS:
                self.eat(PREPOSITIONS)
                self.np(depth + 1)
            else:
                self.eat(RELATIVIZERS)
                self.rc(number, depth + 1)
            self.node(inner)
            self.node(start)
        return number

    def rc(self, head_number: int, depth: int) -> None:
        if self.t[self.i] in DETERMINERS:  # object gap: that the yak does see
            inner = self.i
            number = self.np(depth)
            self.vp(number, depth, gap=True)
            self.node(inner)
        else:
            self.vp(head_number, depth)

    def vp(self, number: int, depth: int, gap: bool = False) -> int:
        start = self.i
        if not self.tense:
            aux = self.eat(AUXILIARIES[number])
        verb = self.eat(PAST if self.tense else BARE)
        self.subject_of[verb] = number
        if self.t[verb] in TRANSITIVE_FORMS and not gap:
            self.np(depth)
            self.node(verb)
        elif gap:
            assert self.t[verb] in TRANSITIVE_FORMS
        if not self.tense:
            self.node(start)
        return verb if self.tense else aux


def check_binary_tree(spans: set[tuple[int, int]], n: int) -> None:
    """n - 1 distinct spans including the root, each splitting into two constituents."""
    assert len(spans) == n - 1 and (0, n - 1) in spans
    nodes = spans | {(i, i) for i in range(n)}
    for a, b in spans:
        c = max(e for s, e in nodes if s == a and e < b)
        assert (c + 1, b) in nodes, ((a, b), c)


def tree_of(split, row: int) -> set[tuple[int, int]]:
    tree = split.fields["tree"][row]
    real = tree[:, 0] >= 0
    assert np.all(tree[~real] == -1) and real.sum() == split.fields["sentence_length"][row] - 1
    return {(int(a), int(b)) for a, b in tree[real]}


@pytest.mark.parametrize("max_depth", [1, 2])
@pytest.mark.parametrize("task", ["question-formation", "tense-inflection"])
def test_every_sentence_parses_with_the_gold_tree(task, max_depth):
    d = generate(replace(CONFIGS[task], max_depth=max_depth))
    for _, split in splits(d):
        for row in range(len(split)):
            tokens = source(d, split, row)
            parser = Parser(tokens, task == "tense-inflection", max_depth)
            parser.sentence()
            assert parser.spans == tree_of(split, row)
            check_binary_tree(parser.spans, len(tokens))


def as_tokens(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def test_hand_built_examples():
    lexicon = Lexicon.sized(len(NOUNS), len(TRANSITIVE))
    walrus = Sentence(as_tokens("the walrus that doesn't laugh does giggle ."), (), main=5)
    assert " ".join(hierarchical_question(walrus, lexicon)) == "does the walrus that doesn't laugh giggle ?"
    assert " ".join(linear_question(walrus, lexicon)) == "doesn't the walrus that laugh does giggle ?"
    newts = Sentence(as_tokens("the newts that the yak amused giggled ."), (), 6, ((5, SINGULAR), (6, PLURAL)))
    assert " ".join(hierarchical_present(newts, lexicon)) == "the newts that the yak amuses giggle ."
    assert " ".join(linear_present(newts, lexicon)) == "the newts that the yak amuses giggles ."
    simple = Sentence(as_tokens("the newt near the yaks laughed ."), (), 5, ((5, SINGULAR),))
    assert hierarchical_present(simple, lexicon)[5] == "laughs" and linear_present(simple, lexicon)[5] == "laugh"


def expected_outputs(task: str, tokens: tuple[str, ...], kind: str) -> tuple[tuple, tuple, int]:
    """(hierarchical output, linear output, decisive index) from the test's own parser and rules."""
    parser = Parser(tokens, task == "tense-inflection", max_depth=1)
    main = parser.sentence()
    if kind in ("decl", "past"):
        return tokens, tokens, main if task == "tense-inflection" else 0
    if task == "question-formation":
        first = next(i for i, t in enumerate(tokens) if t in AUX_NUMBER)
        front = lambda k: (tokens[k], *tokens[:k], *tokens[k + 1 : -1], "?")  # noqa: E731
        return front(main), front(first), 0
    recent = {v: NUMBER[next(t for t in reversed(tokens[:v]) if t in NUMBER)] for v in parser.subject_of}
    present = lambda numbers: tuple(  # noqa: E731
        PAST[t][0 if numbers[i] == PLURAL else 1] if i in numbers else t for i, t in enumerate(tokens)
    )
    return present(parser.subject_of), present(recent), main


@pytest.mark.parametrize("task", ["question-formation", "tense-inflection"])
def test_outputs_and_rule_separation(data, task):
    d = data[task]
    index = d.vocab.index()
    for name, split in splits(d):
        for row in range(len(split)):
            kind = str(split.kinds[row])
            hier, lin, decisive = expected_outputs(task, source(d, split, row), kind)
            out = words(d, split, row, int(split.output_start[row]) + 1, int(split.lengths[row]))
            assert out == hier
            assert split.answers[row] == index[hier[decisive]]
            assert split.positions[row] == split.output_start[row] + decisive
            linear = split.fields["linear_answer"][row]
            assert linear == (-1 if lin[decisive] == hier[decisive] else index[lin[decisive]])
            if name in ("train_split", "train_sample", "test"):
                assert lin == hier, "a training or ID test example separates the rules"
            if name == "gen":
                assert kind in ("quest", "present") and linear not in (-1, split.answers[row])


def sentences(d: TaskData, split) -> set[tuple[str, ...]]:
    return {source(d, split, row) for row in range(len(split))}


@pytest.mark.parametrize("task", list(CONFIGS))
def test_held_out_splits_are_disjoint_from_training(data, task):
    d = data[task]
    train = sentences(d, d.train)
    assert sentences(d, d.probes["test"]).isdisjoint(train) and sentences(d, d.probes["gen"]).isdisjoint(train)
    assert sentences(d, d.probes["test"]).isdisjoint(sentences(d, d.probes["gen"]))
    assert len(d.probes["gen"]) == CONFIGS[task].n_gen and d.roles["grok"] == "gen"


@pytest.mark.parametrize("loss_on", ["full", "output"])
@pytest.mark.parametrize("task", list(CONFIGS))
def test_sequence_encoding(task, loss_on):
    d = generate(replace(CONFIGS[task], loss_on=loss_on))
    eos = d.vocab.index()["<eos>"]
    for _, s in splits(d):
        n, width = s.tokens.shape
        pos = np.arange(width)[None, :]
        real = pos < s.lengths[:, None]
        shifted = np.concatenate([s.tokens[:, 1:], np.zeros((n, 1), dtype=np.int64)], axis=1)
        has_loss = real & (pos >= (s.output_start[:, None] if loss_on == "output" else 0))
        last = pos == (s.lengths - 1)[:, None]
        assert np.all(s.targets[~has_loss] == -1)
        assert np.all(s.targets[has_loss & ~last] == shifted[has_loss & ~last])
        assert np.all(s.targets[last] == eos) and np.all(s.tokens[~real] == 0)
        markers = {d.vocab.tokens[t] for t in s.tokens[np.arange(n), s.output_start]}
        assert markers <= {"decl", "quest", "past", "present", "close"}
        assert np.array_equal(s.output_start, s.fields["sentence_length"])
        assert np.array_equal(s.targets[np.arange(n), s.positions], s.answers)
        assert s.fields["tree"].shape[1:] == (max(int(s.fields["sentence_length"].max()) - 1, 1), 2)


@pytest.mark.parametrize("task", list(CONFIGS))
def test_same_config_same_data_other_seed_other_data(data, task):
    again, other = generate(CONFIGS[task]), generate(replace(CONFIGS[task], seed=1))
    for (_, a), (_, b) in zip(splits(data[task]), splits(again), strict=True):
        for name in ("tokens", "lengths", "answers", "targets", "output_start", "positions", "kinds"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert all(np.array_equal(a.fields[f], b.fields[f]) for f in a.fields)
    assert not np.array_equal(data[task].train.tokens[:50], other.train.tokens[:50])


def dyck_prefix_checks(tokens: tuple[str, ...]) -> tuple[list[str], int]:
    """(closing sequence, deepest nesting), failing on a closer that does not match."""
    stack, deepest = [], 0
    for t in tokens:
        if t.startswith("("):
            stack.append(t[1:])
            deepest = max(deepest, len(stack))
        else:
            assert stack.pop() == t[1:]
    return [f"){k}" for k in reversed(stack)], deepest


def test_dyck_completions_depths_and_trees(data):
    d, cfg = data["dyck"], CONFIGS["dyck"]
    index = d.vocab.index()
    for name, split in splits(d):
        for row in range(len(split)):
            prefix = source(d, split, row)
            closing, deepest = dyck_prefix_checks(prefix)
            assert closing and cfg.min_length <= len(prefix) <= cfg.max_length
            assert words(d, split, row, int(split.output_start[row]) + 1, int(split.lengths[row])) == tuple(closing)
            assert (deepest > cfg.train_max_depth) == (name == "gen") and deepest <= cfg.gen_max_depth
            last_open = next(t for t in reversed(prefix) if t.startswith("("))
            linear = index[")" + last_open[1:]]
            assert split.fields["linear_answer"][row] == (-1 if linear == split.answers[row] else linear)
            check_binary_tree(tree_of(split, row), len(prefix))


def test_presets_validate_and_generate_quickly():
    for task in ("question-formation", "tense-inflection", "dyck"):
        cfg = config.load(task)
        assert cfg.data.task == task and cfg.train.stop_on_grok is False
        d = generate(cfg.data)
        assert d.info["split_sizes"]["train"] >= cfg.data.n_train and set(d.probes) == {"train_sample", "test", "gen"}


@pytest.mark.parametrize(
    ("task", "overrides", "key"),
    [
        ("question-formation", {"n_nouns": 99}, "data.n_nouns"),
        ("question-formation", {"max_depth": 0}, "data.max_depth"),
        ("tense-inflection", {"n_test": 0}, "data.n_test"),
        ("tense-inflection", {"task": "question-formation"}, "data.task"),
        ("dyck", {"gen_max_depth": 3}, "data.gen_max_depth"),
        ("dyck", {"max_length": 2}, "data.max_length"),
        ("dyck", {"n_types": 0}, "data.n_types"),
    ],
)
def test_invalid_configs_name_the_key(task, overrides, key):
    with pytest.raises(UserError, match=key):
        generate(TASKS[task].config(**overrides))


def test_infeasible_sizes_and_unknown_keys_are_user_errors(tmp_path, data):
    tiny = DyckConfig(n_types=1, min_length=4, max_length=4, n_train=100, n_test=1, n_gen=0)
    with pytest.raises(UserError, match="data.n_train"):
        generate(tiny)
    with pytest.raises(UserError, match="unknown key data.n_sentences"):
        config.load("question-formation", ["data.n_sentences=5"])
    with pytest.raises(UserError, match="sequence task"):
        write_dataset(data["dyck"], {}, tmp_path / "out")
