"""Logit lens: ranks on a hand-built example, the last layer equals the model's own logits, and
`groklab analyze` over a run's checkpoints writes its JSON and figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from groklab import config, train
from groklab.analysis.logit_lens import logit_lens, ranks
from groklab.cli import main
from groklab.model import Transformer
from groklab.tasks import generate


def test_ranks_hand_built():
    logits = torch.tensor([[0.1, 0.9, 0.5], [2.0, 1.0, 3.0], [1.0, 1.0, 0.0]])
    assert ranks(logits, torch.tensor([1, 1, 0])).tolist() == [1, 3, 1]
    assert ranks(logits, torch.tensor([2, 0, 2])).tolist() == [2, 2, 3]


LOOPED = ["model.n_layers=1", "model.loops=3", "model.inject_input=true"]


@pytest.mark.parametrize("extra", [[], ["model.n_layers=2", "model.loops=2"], LOOPED])
def test_lens_at_last_layer_equals_model_logits(tiny_config, extra):
    cfg = tiny_config(*extra)
    data = generate(cfg.data)
    torch.manual_seed(0)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
    split = data.probes["test_inferred_id"]
    lens = logit_lens(model, split, "composition", torch.device("cpu"))
    logits = model(torch.as_tensor(split.tokens), torch.as_tensor(split.lengths) - 1)
    r = ranks(logits, torch.as_tensor(split.answers)).double()
    assert lens["answer@last"]["mrr"][-1] == pytest.approx((1 / r).mean().item())
    assert len(lens["bridge@r1"]["mrr"]) == cfg.model.depth + 1  # one row per layer of every loop, and the input
    # the embedding layer at the r2 position decodes r2 itself far better than chance (tied embeddings)
    assert lens["r2@r2"]["mrr"][0] > 10 / len(data.vocab)


def test_analyze_cli_over_checkpoints(tiny_config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.start(tiny_config(), run_dir, progress=False).run()
    assert main(["analyze", str(run_dir), "--examples", "50", "--quiet"]) == 0
    out = json.loads((run_dir / "analysis" / "logit-lens-test_inferred_id.json").read_text())
    steps = [c["step"] for c in out["checkpoints"]]
    assert steps == sorted(steps) and steps[-1] == 60 and out["examples"] == 50
    assert set(out["checkpoints"][0]["targets"]) == {"bridge@r1", "r2@r2", "answer@last"}
    assert all(0 <= v <= 1 for c in out["checkpoints"] for v in c["targets"]["bridge@r1"]["mrr"])
    assert (run_dir / "analysis" / "logit-lens-test_inferred_id.png").stat().st_size > 1000
    assert main(["analyze", str(run_dir), "--split", "nope", "--quiet"]) == 2
    assert "choose one of" in capsys.readouterr().err


def test_analyze_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["analyze", str(tmp_path), "--quiet"]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_comparison_targets(tmp_path):
    cfg = config.load("comparison-small", ["data.n_entities=30", "data.n_attributes=3", "model.n_layers=2"])
    data = generate(cfg.data)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
    lens = logit_lens(model, data.probes["test_inferred_ood"], "comparison", torch.device("cpu"))
    assert set(lens) == {"v1@e1", "v2@e2", "answer@last"}
    assert np.isfinite(lens["v1@e1"]["mrr"]).all()


def test_patching_clean_into_clean_changes_nothing_and_a_patch_matters(tiny_config):
    from groklab.hooks import resid_name, run_with_cache, run_with_patches

    cfg = tiny_config()
    data = generate(cfg.data)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
    split = data.probes["test_inferred_id"].take(np.arange(20))
    tokens, last = torch.as_tensor(split.tokens), torch.as_tensor(split.lengths) - 1
    clean, cache = run_with_cache(model, tokens, positions=last)
    for i in range(cfg.model.depth + 1):
        name = resid_name(i)
        same = run_with_patches(model, tokens, {name: (1, cache[name][:, 1])}, positions=last)
        torch.testing.assert_close(same, clean)
    other = cache[resid_name(1)][:, 1].roll(1, dims=0)  # another example's state at r1
    changed = run_with_patches(model, tokens, {resid_name(1): (1, other)}, positions=last)
    assert not torch.allclose(changed, clean)
