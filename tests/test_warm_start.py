"""Warm starts: tokens mapped by name, the carried model computes what the checkpoint computes, exact resume,
and a bad --init-from is one error line that leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from groklab import checkpoint, config, runs, train
from groklab.cli import main
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.tasks.dataset import Vocab
from groklab.warm_start import WarmStart, parse, token_map
from tests.conftest import TINY


def metrics_without_time(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny composition run (40 entities) with a Grokfast EMA filter, trained 40 steps."""
    run_dir = tmp_path_factory.mktemp("parent") / "run"
    cfg = config.load("demo", TINY + ["train.steps=40", "filter.kind=ema"])
    train.start(cfg, run_dir, progress=False).run()
    return run_dir


def child_config(*extra: str) -> config.RunConfig:
    """50 entities: the parent's 40 entity tokens and all its relations, plus 10 new entities."""
    return config.load("demo", TINY + ["data.n_entities=50", "train.steps=30", "filter.kind=ema", *extra])


def test_token_map_is_by_name():
    old, new = Vocab(("<pad>", "a", "b")), Vocab(("<pad>", "b", "c", "a"))
    assert token_map(old, new).tolist() == [0, 2, -1, 1]


def test_parse():
    assert parse("runs/a") == WarmStart(Path("runs/a"), "last")
    assert parse("runs/a@120", True) == WarmStart(Path("runs/a"), 120, True)
    assert parse("runs/a@grok").step == "grok"
    with pytest.raises(UserError, match="checkpoint step, last or grok"):
        parse("runs/a@soon")


def test_warm_start_equals_the_checkpoint_loaded_into_a_fresh_model(parent, tmp_path):
    cfg = child_config()
    trainer = train.start(cfg, tmp_path / "child", progress=False, init_from=WarmStart(parent))
    parent_cfg, parent_data = runs.open_run(parent)
    fresh = Transformer(parent_cfg.model, len(parent_data.vocab), parent_data.n_ctx)
    step = checkpoint.list_steps(parent)[-1]
    checkpoint.load(parent, step, fresh)
    ids = token_map(trainer.data.vocab, parent_data.vocab)  # parent id -> child id (all parent tokens are shared)
    assert (ids >= 0).all()
    split = parent_data.probes["train_inferred"]
    tokens, positions = torch.from_numpy(split.tokens), torch.from_numpy(split.lengths - 1)
    fresh.eval()
    trainer.model.eval()
    with torch.no_grad():
        expected = fresh(tokens, positions)
        got = trainer.model(torch.from_numpy(ids[split.tokens]), positions)[:, torch.from_numpy(ids)]
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    # new tokens keep the child's own fresh initial rows: what the same seed draws without a warm start
    torch.manual_seed(cfg.train.seed)
    init = Transformer(cfg.model, len(trainer.data.vocab), trainer.data.n_ctx)
    new = torch.from_numpy(np.flatnonzero(token_map(parent_data.vocab, trainer.data.vocab) < 0))
    assert len(new) == 10
    assert torch.equal(trainer.model.embed.weight[new], init.embed.weight[new])
    meta = json.loads((tmp_path / "child" / runs.META).read_text())["init_from"]
    manifest = json.loads((checkpoint.step_dir(parent, step) / "manifest.json").read_text())
    assert meta["step"] == step and meta["checksum"] == manifest["sha256"]["model.safetensors"]
    assert meta["tokens"]["shared"] == len(parent_data.vocab) and meta["tokens"]["new"] == 10
    assert meta["tokens"]["new_names"][0] == "<e_40>" and meta["optimizer"] == "fresh"
    assert checkpoint.list_steps(tmp_path / "child") == [0]  # the warm start is the run's own step-0 checkpoint


def test_warm_started_run_resumes_exactly(parent, tmp_path):
    cfg, warm = child_config("model.dropout=0.1"), WarmStart(parent, "last", with_state=True)
    train.start(cfg, tmp_path / "full", progress=False, init_from=warm).run()
    train.start(cfg, tmp_path / "cut", progress=False, init_from=warm).run()
    cut = tmp_path / "cut"
    for keep in (checkpoint.list_steps(cut)[2], 0):  # a crash mid-run, then one right after the warm start
        for step in checkpoint.list_steps(cut):
            if step > keep:
                shutil.rmtree(checkpoint.step_dir(cut, step))
        (cut / runs.SUMMARY).unlink(missing_ok=True)
        trainer = train.resume(cut, progress=False)
        assert trainer.step == keep
        trainer.run()
        assert metrics_without_time(cut) == metrics_without_time(tmp_path / "full")
        a, b = (Path(checkpoint.step_dir(d, 30)) / "model.safetensors" for d in (cut, tmp_path / "full"))
        assert a.read_bytes() == b.read_bytes()


def test_init_from_state_carries_optimizer_and_filter_rows_by_name(parent, tmp_path):
    trainer = train.start(child_config(), tmp_path / "child", progress=False, init_from=WarmStart(parent, "last", True))
    state = torch.load(checkpoint.step_dir(parent, 40) / "state.pt", weights_only=True)
    mu, carried = state["filter"]["mu.embed.weight"], trainer.filter.mu["embed.weight"]
    rows = torch.from_numpy(token_map(runs.open_run(parent)[1].vocab, trainer.data.vocab))
    assert torch.equal(carried[rows >= 0], mu[rows[rows >= 0]])
    assert (rows < 0).sum() == 10 and not carried[rows < 0].any()  # entities 40..49 are new: zero, as fresh
    adam = trainer.optimizer.state[trainer.model.blocks[0].mlp.fc.weight]
    assert adam["exp_avg"].abs().sum() > 0 and int(adam["step"]) == 40
    meta = json.loads((tmp_path / "child" / runs.META).read_text())["init_from"]
    assert meta["optimizer"] == meta["filter"] == "carried"


def test_a_run_killed_before_its_warm_start_checkpoint_is_not_resumed_from_random_weights(parent, tmp_path):
    train.start(child_config(), tmp_path / "child", progress=False, init_from=WarmStart(parent))
    shutil.rmtree(checkpoint.step_dir(tmp_path / "child", 0))
    with pytest.raises(UserError, match="stopped before"):
        train.resume(tmp_path / "child", progress=False)


def test_across_tasks_only_shared_names_carry(tmp_path):
    small = ["model.n_layers=2", "model.d_model=32", "model.d_mlp=64", "train.threads=1", "train.eval_points=3",
             "train.ckpt_points=1", "train.warmup_steps=1"]
    modular = config.load("modular-p97", small + ["data.modulus=7", "train.steps=3", "model.tie_embeddings=true",
                                                  "model.init=gpt2", "model.residual=pre_ln",
                                                  "model.activation=gelu_tanh"])
    train.start(modular, tmp_path / "modular", progress=False).run()
    logic = config.load("logic", small + ["data.n_vars=2", "train.steps=3"])
    trainer = train.start(logic, tmp_path / "logic", progress=False, init_from=WarmStart(tmp_path / "modular"))
    meta = json.loads((tmp_path / "logic" / runs.META).read_text())["init_from"]
    assert meta["tokens"]["shared"] == 2 and meta["task"] == "modular"  # <pad> and =
    _, parent_data = runs.open_run(tmp_path / "modular")
    parent_model = Transformer(modular.model, len(parent_data.vocab), parent_data.n_ctx)
    checkpoint.load(tmp_path / "modular", 3, parent_model)
    eq_new, eq_old = trainer.data.vocab.index()["="], parent_data.vocab.index()["="]
    assert torch.equal(trainer.model.embed.weight[eq_new], parent_model.embed.weight[eq_old])
    assert meta["positions"] == {"shared": parent_data.n_ctx, "new": trainer.data.n_ctx - parent_data.n_ctx}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--init-from", "does/not/exist"], "not a run directory"),
        (["--init-from", "{parent}", "--set", "model.d_model=64"], "model.d_model is 32 there, 64 here"),
        (["--init-from", "{parent}@7"], "no complete checkpoint at step 7"),
        (["--init-from", "{parent}@grok"], "never grokked"),
        (["--init-from", "{parent}@soon"], "checkpoint step, last or grok"),
        (["--init-from-state"], "needs --init-from"),
        (["--init-from", "{parent}", "--init-from-state", "--set", "train.optimizer=adam"], "optimizer"),
    ],
)
def test_bad_init_from_is_one_error_line(parent, tmp_path, capsys, extra, needle):
    args = ["train", "demo", "--quiet", "--out", str(tmp_path / "child")]
    for item in TINY:
        args += ["--set", item]
    code = main(args + [x.format(parent=parent) for x in extra])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "child").exists()  # refused before the run folder is made
