"""The ranking shortcut (tasks/ranking_shortcut.py): a baseline that ranks entities from the training comparisons
alone, never reading an atomic fact; every comparison accuracy is read against it (science.md §10)."""

from __future__ import annotations

import dataclasses

import numpy as np

from groklab.tasks import TASKS, generate, no_information, shortcut_baseline
from groklab.tasks.comparison import compare
from groklab.tasks.ranking_shortcut import best_threshold, comparison_rows, fit_scores, predict


def test_a_chain_of_neighbour_comparisons_ranks_every_pair_and_keeps_ties():
    # one attribute (token 0), entities 1..6 with values 0,1,2,2,3,4: only neighbours are compared in training
    values = np.array([0, 0, 1, 2, 2, 3, 4])
    e1, e2 = np.arange(1, 6), np.arange(2, 7)
    labels = compare(values[e1], values[e2])
    scores = fit_scores(np.zeros(5, dtype=np.int64), e1, e2, labels - 1, size=7)
    s = scores.value[scores.row_of[0]]
    tau = best_threshold(s[e1] - s[e2], labels)
    assert (predict(s[e1] - s[e2], tau) == labels).all()
    a, b = np.array([1, 1, 6, 3]), np.array([6, 4, 2, 4])  # never compared: 0<4, 0<2, 4>1, 2=2 (3 vs 4)
    guess = predict(s[a] - s[b], tau)
    assert guess.tolist() == compare(values[a], values[b]).tolist()


def test_on_comparison_it_reaches_the_id_test_without_atomic_facts_and_only_the_prior_out_of_distribution():
    data = generate(TASKS["comparison"].config(n_entities=100, n_attributes=10, phi=7.2))
    shortcut = shortcut_baseline(data)
    assert shortcut["test_inferred_id"] > 0.8  # what a model can score without retrieving one value
    assert abs(shortcut["test_inferred_ood"] - no_information(data)["test_inferred_ood"]) < 0.02
    assert "id_atomic" not in shortcut and "ood_atomic" not in shortcut
    atomic = ~comparison_rows(data.train)  # drop every atomic fact from training: the shortcut is unchanged
    keep = np.flatnonzero(~atomic)
    train = dataclasses.replace(
        data.train, tokens=data.train.tokens[keep], lengths=data.train.lengths[keep],
        answers=data.train.answers[keep], fields={k: v[keep] for k, v in data.train.fields.items()},
        kinds=None if data.train.kinds is None else data.train.kinds[keep],
    )
    assert atomic.any() and shortcut_baseline(dataclasses.replace(data, train=train)) == shortcut


def test_tasks_without_comparisons_have_no_shortcut():
    assert shortcut_baseline(generate(TASKS["modular"].config())) == {}
