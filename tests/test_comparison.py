"""Comparison measured as the paper means it: the authors' template, per-label and per-gap accuracy, the label
prior as the no-information level, and OOD as the grok signal (docs/science.md §10)."""

from __future__ import annotations

import numpy as np
import torch

from groklab.metrics import ProbeEvaluator
from groklab.tasks import TASKS, generate, no_information, probe_breakdowns, without_empty_probes
from groklab.tasks.comparison import TEMPLATE_POSITIONS, compare, template_of

SMALL = {"n_entities": 40, "n_attributes": 3, "phi": 3.0}


def small(template: str = "paper"):
    return generate(TASKS["comparison"].config(template=template, **SMALL))


def test_paper_template_places_entities_at_positions_2_and_4():
    data = small("paper")
    split = data.probes["test_inferred_ood"]
    names = np.array(data.vocab.tokens)
    assert template_of(split) == "paper" and split.tokens.shape[1] == 5 and (split.lengths == 5).all()
    assert (names[split.tokens[:, 1]] == "<q>").all() and (names[split.tokens[:, 3]] == "<mask>").all()
    at = TEMPLATE_POSITIONS["paper"]
    assert (split.tokens[:, at["e1"]] == split.fields["e1"]).all()
    assert (split.tokens[:, at["e2"]] == split.fields["e2"]).all()
    short = small("short").probes["test_inferred_ood"]
    assert template_of(short) == "short" and short.tokens.shape[1] == 3
    # same facts either way: the template changes the input, not the knowledge base or the labels
    assert (short.answers == split.answers).all() and (short.fields["e1"] == split.fields["e1"]).all()


def test_breakdowns_split_rows_by_label_and_value_gap():
    data = small()
    split = data.probes["test_inferred_id"]
    groups = probe_breakdowns(data)["test_inferred_id"]
    gap = np.abs(split.fields["v1"] - split.fields["v2"])
    label = compare(split.fields["v1"], split.fields["v2"])
    assert (groups["eq"] == (label == 1)).all() and (groups["eq"] == groups["gap0"]).all()
    assert sum(groups[g].sum() for g in ("lt", "eq", "gt")) == len(split)
    assert sum(groups[g].sum() for g in ("gap0", "gap1", "gap2-3", "gap4-7", "gap8+")) == len(split)
    assert (groups["gap2-3"] == ((gap >= 2) & (gap <= 3))).all()
    assert "id_atomic" not in probe_breakdowns(data)  # atomic facts have no label or gap


def test_no_information_is_the_majority_label_class_not_a_third():
    data = generate(TASKS["comparison"].config(n_entities=100, n_attributes=10, phi=3.0))
    prior = no_information(data)
    labels = compare(*(data.probes["test_inferred_ood"].fields[k] for k in ("v1", "v2")))
    expected = np.bincount(labels).max() / len(labels)
    assert prior["test_inferred_ood"] == expected and 0.42 < expected < 0.52  # ties are ~5% at 20 values


class AlwaysLess(torch.nn.Module):
    """A 'model' that always answers the first label token of the row's attribute (`<`): the shortcut-free
    baseline whose per-group accuracies are known exactly."""

    def __init__(self, data):
        super().__init__()
        self.vocab, self.label0 = len(data.vocab), data.vocab.index()
        self.first_label = {a: self.label0[f"<attr_{a}_0>"] for a in range(SMALL["n_attributes"])}
        self.attr_of_token = {self.label0[f"<attr_{a}>"]: a for a in range(SMALL["n_attributes"])}

    def forward(self, tokens, positions=None):
        out = torch.zeros(len(tokens), self.vocab)
        for i, t in enumerate(tokens[:, 0].tolist()):
            out[i, self.first_label.get(self.attr_of_token.get(t, -1), 0)] = 1.0
        return out


def test_evaluator_logs_per_group_accuracy():
    data = small()
    evaluate = ProbeEvaluator(data, data.n_ctx, torch.device("cpu"), batch_size=256)
    row = evaluate(AlwaysLess(data), torch.autocast("cpu", enabled=False))
    assert row["test_inferred_ood/acc_lt"] == 1.0 and row["test_inferred_ood/acc_gt"] == 0.0
    assert row["test_inferred_ood/acc_eq"] == 0.0 and row["test_inferred_ood/acc_gap0"] == 0.0
    split = data.probes["test_inferred_ood"]
    share_lt = (compare(split.fields["v1"], split.fields["v2"]) == 0).mean()
    assert abs(row["test_inferred_ood/acc"] - share_lt) < 1e-12
    assert "id_atomic/acc_lt" not in row


def test_comparison_groks_on_its_ood_test():
    data = small()
    assert data.roles["grok"] == "test_inferred_ood"
    assert {data.roles["atomic_id"], data.roles["atomic_ood"]} == {"id_atomic", "ood_atomic"}


def test_phi_zero_trains_on_atomic_facts_only_and_fits_on_them():
    """An atomic-facts-only stage (a curriculum's first): no training comparisons, fit read on id_atomic; the
    test comparisons are the same as at φ > 0 for the same seed (the split does not depend on φ)."""
    data = without_empty_probes(generate(TASKS["comparison"].config(**(SMALL | {"phi": 0.0}))))
    assert data.info["n_train_inferred"] == 0 and len(data.train) == data.info["n_atomic"]
    assert data.roles["train"] == "id_atomic" and "train_inferred" not in data.probes
    with_phi = small()
    assert with_phi.roles["train"] == "train_inferred"
    assert (data.probes["test_inferred_ood"].tokens == with_phi.probes["test_inferred_ood"].tokens).all()
