"""Causal tracing: on a hand-built model whose answer is a copy of one input position, tracing finds exactly
that position's states; planned perturbations really change the answer; `groklab analyze` writes the JSON
and the heatmap figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from groklab import config, train
from groklab.analysis.causal_tracing import (
    Perturbation,
    atomic_table,
    causal_tracing,
    plan_perturbations,
)
from groklab.analysis.targets import position_names
from groklab.cli import main
from groklab.config import ModelConfig
from groklab.model import Transformer
from groklab.tasks import generate
from groklab.tasks.dataset import Split

VOCAB, N_CTX = 8, 3
D = VOCAB + N_CTX  # one-hot token dims, then one-hot position dims


def copy_model() -> Transformer:
    """Two layers; layer 0 copies the token at position 1 into every later position with a large weight;
    layer 1 does nothing. So the prediction at position 2 is the token at position 1."""
    cfg = ModelConfig(n_layers=2, d_model=D, n_heads=1, d_mlp=4, tie_embeddings=True)
    model = Transformer(cfg, VOCAB, N_CTX).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for ln in [model.ln_final] + [m for b in model.blocks for m in (b.ln1, b.ln2)]:
            ln.weight.fill_(1.0)
        model.embed.weight[:, :VOCAB] = torch.eye(VOCAB)
        model.pos_embed.weight[:, VOCAB:] = torch.eye(N_CTX)
        qkv = model.blocks[0].attn.qkv.weight  # rows: q (D), k (D), v (D)
        qkv[0, VOCAB + 2] = 100.0  # the query at position 2 ...
        qkv[D, VOCAB + 1] = 1.0  # ... matches the key at position 1
        qkv[2 * D : 2 * D + VOCAB, :VOCAB] = torch.eye(VOCAB)  # value: the token part
        model.blocks[0].attn.out.weight[:VOCAB, :VOCAB] = 10 * torch.eye(VOCAB)
    return model


def test_tracing_finds_the_one_position_the_answer_depends_on():
    model = copy_model()
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, size=(60, N_CTX))
    split = Split(tokens, np.full(60, N_CTX), tokens[:, 1].copy())
    logits = model(torch.as_tensor(tokens), torch.full((60,), N_CTX - 1))
    assert (logits.argmax(-1).numpy() == tokens[:, 1]).all()  # the construction works

    def perturb(position: int) -> Perturbation:
        new = tokens.copy()
        new[:, position] = (tokens[:, position] % (VOCAB - 1)) + 1  # always a different token
        return Perturbation(f"p{position}", position, np.arange(60), new)

    out = causal_tracing(model, split, [perturb(p) for p in range(N_CTX)], torch.device("cpu"))
    strength = np.asarray(out["strength"])  # [state i = 0..2, position]
    np.testing.assert_array_equal(strength, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    via_position_1 = np.asarray(out["perturbed"]["p1"]["strength"])
    # perturbing token 1: its embedding matters; after layer 0 the information lives at position 2 only
    np.testing.assert_array_equal(via_position_1, [[0, 1, 0], [0, 0, 1], [0, 0, 1]])
    assert out["perturbed"]["p1"]["perturbed_changes"] == 1.0
    assert out["perturbed"]["p0"]["perturbed_changes"] == out["perturbed"]["p2"]["perturbed_changes"] == 0.0
    assert out["perturbed"]["p1"]["clean_accuracy"] == 1.0


def test_composition_perturbations_change_the_answer(tiny_config):
    data = generate(tiny_config().data)
    split = data.probes["train_inferred"]
    tail = atomic_table(data.train, "head", "r1", "answer", len(data.vocab))
    plans = {p.name: p for p in plan_perturbations(data, split)}
    assert set(plans) == {"head", "r1", "r2"} and all(len(p.rows) > 0.9 * len(split) for p in plans.values())
    for plan in plans.values():
        h, r1, r2 = plan.tokens.T
        b = tail[h, r1]
        answer = np.where(b >= 0, tail[np.maximum(b, 0), r2], -1)
        assert (answer != split.answers[plan.rows]).all()
        changed = plan.tokens != split.tokens[plan.rows]
        assert changed[:, plan.position].all() and changed.sum() == len(plan.rows)  # only that token
    assert np.isin(plans["r2"].tokens[:, 2], split.fields["r1"]).all()  # a relation replaces a relation


def test_comparison_perturbations_flip_the_label():
    cfg = config.load("comparison-small", ["data.n_entities=30", "data.n_attributes=3", "model.n_layers=2"])
    data = generate(cfg.data)
    split = data.probes["train_inferred"]
    value = atomic_table(data.train, "entity", "attribute", "value", len(data.vocab))
    assert data.vocab.tokens[split.tokens[0, 1]] == "<q>"  # the paper's template: attr <q> e1 <mask> e2
    assert position_names("comparison", split, data.vocab) == ["attribute", "<q>", "e1", "<mask>", "e2"]
    for plan in plan_perturbations(data, split, seed=1):
        a, e1, e2 = plan.tokens[:, [0, 2, 4]].T
        old = split.tokens[plan.rows][:, [0, 2, 4]]
        old_order = np.sign(value[old[:, 1], old[:, 0]] - value[old[:, 2], old[:, 0]])
        new_order = np.sign(value[e1, a] - value[e2, a])
        assert ((a != old[:, 0]) | (new_order != old_order)).all(), plan.name


def test_tracing_refuses_atomic_splits(tiny_config):
    data = generate(tiny_config().data)
    with pytest.raises(Exception, match="inferred facts"):
        plan_perturbations(data, data.probes["id_atomic"])


def test_analyze_causal_tracing_cli(tiny_config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.start(tiny_config(), run_dir, progress=False).run()
    assert main(["analyze", str(run_dir), "--method", "causal-tracing", "--examples", "40", "--quiet"]) == 0
    out = json.loads((run_dir / "analysis" / "causal-tracing-train_inferred.json").read_text())
    n_states = tiny_config().model.depth + 1
    assert out["position_names"] == ["head", "r1", "r2"]  # the heatmap's column labels, from the JSON
    for ckpt in out["checkpoints"]:
        grid = np.asarray(ckpt["strength"])
        assert grid.shape == (n_states, 3) and ((grid >= 0) & (grid <= 1)).all()
        assert set(ckpt["perturbed"]) == {"head", "r1", "r2"}
        # a state before the perturbed token is identical in both runs, so patching it changes nothing
        assert np.asarray(ckpt["perturbed"]["r2"]["strength"])[:, :2].max() == 0
    for figure in ("causal-tracing-train_inferred.png", "causal-tracing-train_inferred-curves.png"):
        assert (run_dir / "analysis" / figure).stat().st_size > 1000
