"""The Python API (groklab/api.py) on tiny configs: what it returns agrees with the files and the model."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import groklab
import groklab.api as gl
from groklab import config, runs
from groklab.errors import UserError
from groklab.tasks import generate
from groklab.tasks.composition import CompositionConfig
from tests.conftest import TINY

SMALL_KB = {"n_entities": 40, "phi": 3.0}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> gl.Run:
    return gl.train("demo", TINY, out=tmp_path_factory.mktemp("api") / "run", progress=False)


def test_load_config_takes_dicts_lists_and_configs():
    from_dict = gl.load_config("demo", {"data.phi": 9, "model.n_layers": 2, "train.betas": [0.9, 0.98]})
    from_list = gl.load_config("demo", ["data.phi=9", "model.n_layers=2", "train.betas=[0.9, 0.98]"])
    assert from_dict == from_list
    assert (from_dict.data.phi, from_dict.model.n_layers, from_dict.train.betas) == (9.0, 2, (0.9, 0.98))
    again = gl.load_config(from_dict, {"model.n_layers": 3})
    assert again.model.n_layers == 3 and again.data == from_dict.data
    assert gl.load_config("demo", "data.phi=5.4").data.phi == 5.4  # one string is one override
    with pytest.raises(UserError, match="unknown key model.n_layer"):
        gl.load_config("demo", {"model.n_layer": 2})


def test_make_dataset_is_the_generator_of_its_settings():
    data = gl.make_dataset("composition", **SMALL_KB)
    assert np.array_equal(data.train.tokens, generate(CompositionConfig(**SMALL_KB)).train.tokens)
    expected = generate(config.load("demo", ["data.n_entities=40", "data.phi=3.0"]).data)
    cfg = gl.load_config("demo", {"data.n_entities": 40, "data.phi": 3.0})
    from_config = gl.make_dataset(cfg)
    assert np.array_equal(from_config.train.tokens, expected.train.tokens)
    assert gl.make_dataset(cfg, phi=2.0).info["n_train_inferred"] < from_config.info["n_train_inferred"]
    with pytest.raises(UserError, match="unknown key data.n_entity"):
        gl.make_dataset("composition", n_entity=40)


def test_dataset_folder_round_trip(tmp_path):
    written = gl.write_dataset("composition", tmp_path / "kb", **SMALL_KB)
    loaded = gl.load_dataset(tmp_path / "kb")
    assert np.array_equal(written.train.tokens, loaded.train.tokens)
    assert set(written.probes) == set(loaded.probes)


def test_facts_table_shows_each_fact_as_its_tokens():
    data = gl.make_dataset("composition", **SMALL_KB)
    table = gl.facts_table(data, "test_inferred_id", n=4)
    assert len(table) == 4
    for row in table:  # the input is `h r1 r2`, and every field is a token of the vocabulary
        assert row["input"].split() == [row["head"], row["r1"], row["r2"]]
        assert row["bridge"] in data.vocab.tokens and row["kind"] == "inferred"
    atomic = gl.facts_table(data, "train", n=3, kind="atomic")
    assert [r["kind"] for r in atomic] == ["atomic"] * 3 and all(r["bridge"] is None for r in atomic)
    # the same seed gives the same rows; the table prints its tokens and renders as HTML
    assert gl.facts_table(data, "test_inferred_id", n=4) == table
    assert table[0]["head"] in repr(table) and "<table>" in table._repr_html_()
    assert "&lt;e_" in table._repr_html_()  # tokens are escaped, not taken for tags
    with pytest.raises(UserError, match="test_inferred_id"):
        gl.facts_table(data, "nope")
    with pytest.raises(UserError, match="kinds: atomic, inferred"):
        gl.facts_table(data, "train", kind="nope")


def test_describe_names_every_split_and_its_role():
    data = gl.make_dataset("composition", **SMALL_KB)
    table = gl.describe(data)
    assert [r["split"] for r in table] == ["train", *data.probes]
    assert {r["split"]: r["role"] for r in table}["test_inferred_ood"] == "test_ood"
    assert table[0]["facts"] == len(data.train)


def test_train_returns_the_run_its_files_describe(tiny_run):
    run = tiny_run
    assert runs.is_finished(run.path) and run.finished
    assert run.summary["final_step"] == 60 and run.metrics[-1]["step"] == 60
    assert run.checkpoints()[-1] == 60 and (run.path / runs.ACCURACY_FIGURE).is_file()
    steps, acc = run.curve("id_atomic")
    assert steps[-1] == 60 and acc[-1] == run.summary["final"]["id_atomic"]
    assert run.config.model.n_layers == 2
    assert gl.load_run(run.path).summary == run.summary


def test_model_is_the_checkpoint_the_metrics_were_measured_on(tiny_run):
    """The accuracy of `run.model(step)` on a probe equals the accuracy logged at that step."""
    run, probe = tiny_run, "id_atomic"
    split = run.data.probes[probe]
    for step in (run.checkpoints()[1], run.checkpoints()[-1]):
        model = run.model(step)
        assert not model.training
        with torch.no_grad():
            logits = model(torch.as_tensor(split.tokens), torch.as_tensor(split.lengths - 1))
        acc = (logits.argmax(-1).numpy() == split.answers).mean()
        logged = next(r for r in run.metrics if r["step"] == step)[f"{probe}/acc"]
        assert acc == pytest.approx(logged, abs=1e-9)
    with pytest.raises(UserError, match="no checkpoint at step 7"):
        run.model(7)


def test_stop_at_then_resume_equals_the_uninterrupted_run(tmp_path):
    short = TINY + ["train.steps=30", "train.eval_points=8"]
    whole = gl.train("demo", short, out=tmp_path / "whole", progress=False)
    paused = gl.train("demo", short, out=tmp_path / "paused", stop_at=12, progress=False)
    evals = [r["step"] for r in whole.metrics]
    pause = min(s for s in evals if s >= 12)  # the first evaluation at or after stop_at
    assert pause < 30 and paused.summary["final_step"] == pause and paused.checkpoints()[-1] == pause
    assert paused.metrics[-1]["step"] == pause and paused.summary["paused"]
    assert not paused.finished  # a sweep resumes a paused run instead of skipping it
    resumed = gl.resume(paused.path, progress=False)
    assert resumed.finished and "paused" not in resumed.summary
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(whole.metrics)
    assert torch.equal(resumed.model().embed.weight, whole.model().embed.weight)


def test_analyze_writes_json_and_figures(tiny_run):
    lens = gl.analyze(tiny_run, "logit-lens", examples=20)
    assert lens.path == runs.analysis_file(tiny_run.path, "logit-lens", "test_inferred_id")
    assert [c["step"] for c in lens.result["checkpoints"]] == tiny_run.checkpoints()
    assert lens.figures and all(f.path.is_file() for f in lens.figures)
    assert lens.figures[0]._repr_png_().startswith(b"\x89PNG")
    assert lens.at(55)["step"] == 60 and lens.at(1)["step"] == 1
    with pytest.raises(UserError, match="examples=0"):
        gl.analyze(tiny_run, "logit-lens", examples=0)


def test_analyze_at_chosen_checkpoints(tiny_run):
    first, last = tiny_run.checkpoints()[0], tiny_run.checkpoints()[-1]
    trace = gl.analyze(tiny_run, "causal-tracing", examples=20, steps=[last, first])
    assert [c["step"] for c in trace.result["checkpoints"]] == [first, last]
    full = gl.analyze(tiny_run, "causal-tracing", examples=20)  # the same numbers at those steps
    assert trace.at(last) == full.at(last)
    with pytest.raises(UserError, match="no checkpoint at step 7"):
        gl.analyze(tiny_run, "logit-lens", steps=[7])


def test_plot_accuracy_and_load_run_errors(tiny_run, tmp_path):
    figure = gl.plot_accuracy(tiny_run, out=tmp_path / "acc.png")
    assert figure.path == tmp_path / "acc.png" and figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(UserError, match="not a run directory"):
        gl.load_run(tmp_path)


def test_package_reexports_the_api_but_not_over_a_module():
    assert groklab.make_dataset is gl.make_dataset and groklab.Run is gl.Run
    assert hasattr(importlib.import_module("groklab.train"), "Trainer")
    assert hasattr(groklab.train, "Trainer")  # `groklab.train` stays the trainer's module
    with pytest.raises(AttributeError):
        groklab.no_such_name  # noqa: B018
