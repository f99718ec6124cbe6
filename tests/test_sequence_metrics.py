"""Sequence tasks (structural grokking): the language-model loss, exact match, decisive-token accuracy and the
linear-rule rate, on hand-built cases; and a short real run of question formation end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from groklab import config, train
from groklab.metrics import NO_TARGET, DeviceSplit, sequence_scores, training_loss

VOCAB = 6


def one_hot_logits(predicted: list[list[int]]) -> torch.Tensor:
    """Logits whose argmax at [row, position] is `predicted[row][position]`."""
    return F.one_hot(torch.tensor(predicted), VOCAB).float() * 5.0


def hand_split() -> DeviceSplit:
    # three rows of 5 positions; output starts at position 2; targets -1 at the pad (row 2, last position)
    return DeviceSplit(
        tokens=torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 0]]),
        positions=torch.tensor([2, 2, 3]),
        answers=torch.tensor([4, 4, 5]),
        targets=torch.tensor([[2, 3, 4, 5, 1], [2, 3, 4, 5, 1], [2, 3, 4, 5, NO_TARGET]]),
        output_start=torch.tensor([2, 2, 2]),
        linear=torch.tensor([3, NO_TARGET, 4]),
    )


def test_exact_match_scores_only_the_output_and_ignores_pads():
    split = hand_split()
    predicted = [
        [0, 0, 4, 5, 1],  # prompt wrong (not scored), output right → exact
        [2, 3, 4, 5, 2],  # last output token wrong → not exact
        [2, 3, 4, 4, 3],  # decisive token (position 3) = linear answer 4; pad position ignored
    ]
    scores = sequence_scores(one_hot_logits(predicted), split)
    assert scores["exact"].tolist() == [1.0, 0.0, 0.0]
    assert scores["acc"].tolist() == [1.0, 1.0, 0.0]
    assert scores["linear"].tolist() == [0.0, 0.0, 1.0]  # row 1 has no linear answer: never counted
    assert scores["linear_rows"].tolist() == [1.0, 0.0, 1.0]
    predicted[2][3] = 5  # right at the decisive token, wrong only at the unscored pad position
    assert sequence_scores(one_hot_logits(predicted), split)["exact"][2] == 1.0


def test_sequence_loss_is_the_mean_over_every_target():
    torch.manual_seed(0)
    split = hand_split()
    logits = torch.randn(3, 5, VOCAB)

    class Fixed(torch.nn.Module):
        def forward(self, tokens, positions=None):
            assert positions is None  # a language model needs every position
            return logits

    loss = training_loss(Fixed(), split, torch.autocast("cpu", enabled=False))
    keep = split.targets != NO_TARGET
    expected = F.cross_entropy(logits[keep].double(), split.targets[keep])
    assert torch.allclose(loss, expected) and keep.sum() == 14


@pytest.mark.parametrize("task", ["question-formation", "dyck"])
def test_a_short_sequence_run_learns_and_logs_every_metric(task, tmp_path):
    cfg = config.load(
        task,
        [
            "model.n_layers=2",
            "model.d_model=32",
            "model.n_heads=4",
            "model.d_mlp=64",
            "train.steps=40",
            "train.eval_points=4",
            "train.ckpt_points=2",
            "train.threads=1",
            "train.lr=3e-3",
            "train.warmup_steps=5",
        ],
    )
    summary = train.start(cfg, tmp_path / "run", progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train/loss"] < rows[1]["train/loss"]  # the LM loss falls
    for probe in ("train_sample", "test", "gen"):
        assert {f"{probe}/acc", f"{probe}/exact", f"{probe}/loss"} <= set(rows[-1])
    assert "gen/linear" in rows[-1]  # every gen row separates the rules
    assert summary["roles"]["grok"] == "gen" and set(summary["final"]) == {"train_sample", "test", "gen"}
