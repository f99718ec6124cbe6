"""Trainer: it learns, writes every run file, and resumes exactly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from groklab import checkpoint, runs, train
from groklab.errors import UserError


def metrics_without_time(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]


def final_weights(run_dir):
    step = checkpoint.list_steps(run_dir)[-1]
    return load_file(checkpoint.step_dir(run_dir, step) / "model.safetensors")


def test_smoke_loss_falls_and_run_files_exist(tiny_config, tmp_path):
    trainer = train.start(tiny_config(), tmp_path / "run", progress=False)
    summary = trainer.run()
    run_dir = tmp_path / "run"
    for name in ("config.json", "meta.json", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    rows = runs.read_metrics(run_dir)
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 60
    assert rows[-1]["train/loss"] < rows[1]["train/loss"]
    assert {
        f"{p}/acc"
        for p in ("id_atomic", "ood_atomic", "train_inferred", "test_inferred_id", "test_inferred_ood")
    } <= set(rows[-1])
    assert checkpoint.list_steps(run_dir)[-1] == 60
    assert summary["final_step"] == 60 and set(summary["final"]) >= {"test_inferred_id", "train_inferred"}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["torch"] == torch.__version__ and meta["device"] == "cpu"
    postfix = trainer._postfix(rows[-1])  # the progress bar names probes as metrics.jsonl does, not roles
    assert "train_inferred" in postfix and "test_inferred_ood" in postfix and "test_id" not in postfix


def test_meta_records_the_threads_the_run_uses(tiny_config, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train.start(tiny_config("train.threads=1"), tmp_path / "run", progress=False)
        assert json.loads((tmp_path / "run" / "meta.json").read_text())["threads"] == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_same_seed_same_run(tiny_config, tmp_path):
    for name in ("a", "b"):
        train.start(tiny_config("train.steps=20"), tmp_path / name, progress=False).run()
    assert metrics_without_time(tmp_path / "a") == metrics_without_time(tmp_path / "b")


@pytest.mark.parametrize(
    "extra", [[], ["model.dropout=0.1", "filter.kind=ema"], ["filter.kind=ma", "filter.window=7"]]
)
def test_resume_equals_uninterrupted(tiny_config, tmp_path, extra):
    cfg = tiny_config(*extra)
    train.start(cfg, tmp_path / "full", progress=False).run()
    train.start(cfg, tmp_path / "cut", progress=False).run()
    cut = tmp_path / "cut"
    steps = checkpoint.list_steps(cut)
    keep = steps[len(steps) // 2]
    for step in steps:  # simulate a crash after checkpoint `keep`: later checkpoints never happened
        if step > keep:
            shutil.rmtree(checkpoint.step_dir(cut, step))
    (cut / "summary.json").unlink()
    trainer = train.resume(cut, progress=False)
    assert trainer.step == keep
    trainer.run()
    assert metrics_without_time(cut) == metrics_without_time(tmp_path / "full")
    a, b = final_weights(cut), final_weights(tmp_path / "full")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_skips_corrupt_newest_checkpoint(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    train.start(tiny_config(), run_dir, progress=False).run()
    newest = checkpoint.list_steps(run_dir)[-1]
    weights = checkpoint.step_dir(run_dir, newest) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="corrupt"):
        trainer = train.resume(run_dir, progress=False)
    assert trainer.step == checkpoint.list_steps(run_dir)[-2]


def test_divergence_stops_with_clear_message(tiny_config, tmp_path):
    cfg = tiny_config("train.lr=1e30", "train.grad_clip=0.0", "train.warmup_steps=0")
    trainer = train.start(cfg, tmp_path / "run", progress=False)
    with pytest.raises(train.TrainingDiverged, match="lower train.lr"):
        trainer.run()


def test_amplified_gradient_blow_up_names_lambda(tiny_config, tmp_path):
    cfg = tiny_config("filter.kind=ema", "filter.amplify=1e6", "train.grad_clip=0.0", "train.explode_grad_norm=1e3")
    trainer = train.start(cfg, tmp_path / "run", progress=False)
    with pytest.raises(train.TrainingDiverged, match=r"gradient norm reached .* filter.amplify \(λ\) = 1e\+06"):
        trainer.run()
    assert trainer.step <= cfg.train.check_every  # caught within one check interval, not at a late evaluation


def test_batches_are_a_pure_function_of_step():
    a = train.Batches(n=1000, batch_size=128, seed=3, device=torch.device("cpu"))
    b = train.Batches(n=1000, batch_size=128, seed=3, device=torch.device("cpu"))
    seq = [a.batch(s).clone() for s in range(20)]
    assert all(torch.equal(b.batch(s), seq[s]) for s in reversed(range(20)))
    epoch = torch.cat(seq[: a.steps_per_epoch])
    assert sorted(epoch.tolist()) == list(range(1000))


def test_schedules_checkpoints_follow_evals():
    from groklab.config import TrainConfig

    evals, ckpts = train.schedules(TrainConfig(steps=5000, eval_points=40, ckpt_points=6))
    assert ckpts <= evals and 5000 in ckpts and 0 not in ckpts and 4 <= len(ckpts) <= 7


def test_second_writer_is_refused(tiny_config, tmp_path):
    from groklab.errors import UserError

    run_dir = tmp_path / "run"
    first = train.start(tiny_config(), run_dir, progress=False)
    with pytest.raises(UserError, match="another process"):
        train.Trainer(first.cfg, run_dir, first.data, progress=False)
    first.run()  # releases the lock
    train.resume(run_dir, progress=False)


def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch):
    from groklab.config import TrainConfig

    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(UserWarning, match="train.autocast=none"):
        train.make_autocast(TrainConfig(autocast="bf16"), torch.device("cpu"))


def test_a_probe_named_train_is_refused(tiny_config, tmp_path):
    """Its train/loss would silently overwrite the optimised loss the trainer logs under the same key."""
    import dataclasses

    from groklab.tasks import generate

    cfg = tiny_config()
    data = generate(cfg.data)
    clash = dataclasses.replace(data, probes={"train": data.train, **data.probes})
    with pytest.raises(UserError, match="probe named 'train'"):
        train.Trainer(cfg, tmp_path / "run", clash, progress=False)
