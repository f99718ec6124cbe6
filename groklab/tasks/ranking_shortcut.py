"""The ranking shortcut: the accuracy a comparison probe allows *without* the paper's mechanism.

Wang et al.'s comparison circuit retrieves each entity's value from the atomic facts and compares the two.
A model can also score well by ranking entities from the training comparisons alone. This baseline fits one
scalar s(a, e) per (attribute, entity) to the training comparisons only — least squares on s(a, e1) − s(a, e2)
≈ −1 / 0 / +1 for <, =, > (a linear Bradley–Terry-like ranking, ridge 1e-3 so unconnected entities stay at 0)
— and answers "=" when |s1 − s2| < τ, else by the sign, with τ the training comparisons' best threshold.
It never reads an atomic fact, so an accuracy at or below it is no evidence of value retrieval (it reaches
ID 0.871 / 0.911 on comparison-small's data at φ 7.2 / 12.6, where our models reached 0.79–0.91). Complex
reasoning's hard queries are by construction not derivable from the comparisons, but a soft ranking still
guesses them (0.57–0.61 on complex-small, label prior 1/3).
"""

from __future__ import annotations

import numpy as np

from groklab.tasks.dataset import Split, TaskData
from groklab.tasks.knowledge import compare

RIDGE = 1e-3


def comparison_rows(split: Split) -> np.ndarray:
    """Mask of the split's comparison rows (e1, e2, v1, v2 and attribute present)."""
    names = ("attribute", "e1", "e2", "v1", "v2")
    if any(n not in split.fields for n in names):
        return np.zeros(len(split.answers), dtype=bool)
    return np.logical_and.reduce([split.fields[n] >= 0 for n in names])


class Scores:
    """s(a, e) as a table: one row per attribute token seen in training, one column per token id."""

    def __init__(self, attributes: np.ndarray, size: int) -> None:
        self.row_of = np.full(size, -1)
        self.row_of[attributes] = np.arange(len(attributes))
        self.value = np.zeros((len(attributes), size))
        self.fitted = np.zeros((len(attributes), size), dtype=bool)

    def differences(self, split: Split, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """s(a, e1) − s(a, e2) for the split's rows, and whether either entity was compared in training."""
        a, e1, e2 = (split.fields[n][rows] for n in ("attribute", "e1", "e2"))
        r = self.row_of[a]
        seen = r >= 0
        r = np.where(seen, r, 0)
        diff = np.where(seen, self.value[r, e1] - self.value[r, e2], 0.0)
        return diff, seen & (self.fitted[r, e1] | self.fitted[r, e2])


def fit_scores(attr: np.ndarray, e1: np.ndarray, e2: np.ndarray, target: np.ndarray, size: int) -> Scores:
    """Per attribute, the ridge least-squares scores s with s[e1] − s[e2] ≈ target (token ids < size).
    Solved with torch (float64), not numpy: numpy's BLAS threads fight a training run's torch threads. Torch is
    imported here, not at the top: reading a task's data must not import torch (test_registries)."""
    import torch

    attributes = np.unique(attr)
    scores = Scores(attributes, size)
    for a in attributes:
        rows = attr == a
        ents, idx = np.unique(np.concatenate([e1[rows], e2[rows]]), return_inverse=True)
        i, j = idx[: rows.sum()], idx[rows.sum():]
        t = target[rows].astype(np.float64)
        n = len(ents)
        gram = np.zeros((n, n))
        np.add.at(gram, (i, i), 1.0)
        np.add.at(gram, (j, j), 1.0)
        np.add.at(gram, (i, j), -1.0)
        np.add.at(gram, (j, i), -1.0)
        rhs = np.zeros(n)
        np.add.at(rhs, i, t)
        np.add.at(rhs, j, -t)
        system = torch.from_numpy(gram + RIDGE * np.eye(n))
        scores.value[scores.row_of[a], ents] = torch.linalg.solve(system, torch.from_numpy(rhs)).numpy()
        scores.fitted[scores.row_of[a], ents] = True
    return scores


def predict(diff: np.ndarray, tau: float) -> np.ndarray:
    """Label index (0 <, 1 =, 2 >) from score differences and the tie threshold."""
    return np.where(np.abs(diff) < tau, 1, np.where(diff > 0, 2, 0))


def best_threshold(diff: np.ndarray, labels: np.ndarray) -> float:
    """The tie threshold that answers the training comparisons best (0 = never answer "=")."""
    candidates = np.concatenate([[0.0], np.quantile(np.abs(diff), np.linspace(0.01, 0.5, 50))])
    accuracy = [(predict(diff, tau) == labels).mean() for tau in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def ranking_shortcut(data: TaskData) -> dict[str, float]:
    """Per probe made only of comparisons, the ranking shortcut's accuracy (see the module docstring). A pair
    of entities never compared in training gets the training comparisons' most frequent label, so on OOD
    probes the shortcut is the label prior. Empty when the training split holds no comparisons."""
    train_rows = comparison_rows(data.train)
    if not train_rows.any():
        return {}
    f = data.train.fields
    labels = compare(f["v1"][train_rows], f["v2"][train_rows])
    size = len(data.vocab)
    scores = fit_scores(f["attribute"][train_rows], f["e1"][train_rows], f["e2"][train_rows], labels - 1, size)
    tau = best_threshold(scores.differences(data.train, train_rows)[0], labels)
    majority = int(np.bincount(labels, minlength=3).argmax())
    out = {}
    for name, split in data.probes.items():
        rows = comparison_rows(split)
        if len(rows) and rows.all():
            diff, known = scores.differences(split, rows)
            guess = np.where(known, predict(diff, tau), majority)
            out[name] = float((guess == compare(split.fields["v1"], split.fields["v2"])).mean())
    return out
