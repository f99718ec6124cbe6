"""Curricula: stages chained by warm starts, earlier probes evaluated later in the union vocabulary, resume across
stages after a crash or kill -9 equals the uninterrupted curriculum, and bad files are one error line."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from groklab import checkpoint, curriculum, curriculum_report, runs
from groklab.cli import main
from groklab.tasks import generate
from groklab.tasks.composition import CompositionConfig
from tests.conftest import TINY

STAGES = """
[set]
{common}
[[stage]]
name = "atomic"
config = "demo"
steps = 20
[stage.set]
"data.phi" = 0.0
[[stage]]
name = "wider"
config = "demo"
steps = 40
[stage.set]
"data.n_entities" = 50
"model.dropout" = 0.1
"""


def write_file(path, extra: str = "") -> str:
    common = "\n".join(f'"{k}" = {v}' for k, v in (item.split("=", 1) for item in TINY) if k != "train.steps")
    path.write_text(STAGES.format(common=common) + extra)
    return str(path)


def comparable(run_dir):
    rows = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]
    last = checkpoint.step_dir(run_dir, checkpoint.list_steps(run_dir)[-1])
    return rows, (last / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny two-stage curriculum, run uninterrupted."""
    root = tmp_path_factory.mktemp("curriculum")
    cur = curriculum.load(write_file(root / "c.toml"))
    curriculum.run(cur, root / "out", progress=False)
    return root


def test_stages_chain_and_later_stages_evaluate_earlier_probes(finished):
    out = finished / "out"
    atomic, wider = out / "atomic", out / "wider"
    assert runs.read_summary(atomic)["roles"]["train"] == "id_atomic"  # φ = 0: fit is read on the atomic facts
    parent = runs.read_json(wider / runs.META)["init_from"]
    assert parent["run"] == str(atomic.resolve()) and parent["step"] == 20
    rows = runs.read_metrics(wider)
    assert rows[0]["step"] == 0 and "atomic--id_atomic/acc" in rows[-1] and "atomic--ood_atomic/acc" in rows[-1]
    manifest = runs.read_json(checkpoint.step_dir(atomic, 20) / "manifest.json")
    assert parent["checksum"] == manifest["sha256"]["model.safetensors"]
    for name in ("index.html", "curriculum.png", "summary.txt"):
        assert (out / "report" / name).stat().st_size > 100
    assert "atomic--id_atomic" in (out / "report" / "summary.txt").read_text()
    written = [p.name for folder in (out / curriculum.DATA_DIR, out / "report") for p in folder.rglob("*")]
    assert "atomic--ood_atomic.jsonl" in written
    assert not [name for name in written if set(name) & set('<>:"\\|?*')]  # file names Windows accepts too


def test_older_folders_with_colon_names_report_the_same(finished, tmp_path):
    """Folders written while carried probes were `<stage>:<probe>` are read under the current names."""
    shutil.copytree(finished / "out", tmp_path / "out")
    metrics = tmp_path / "out" / "wider" / runs.METRICS
    metrics.write_text(metrics.read_text().replace('"atomic--', '"atomic:'))
    curriculum_report.write(tmp_path / "out")
    summary = (tmp_path / "out" / "report" / "summary.txt").read_text()
    assert "atomic--id_atomic" in summary and summary == (finished / "out" / "report" / "summary.txt").read_text()


def test_the_vocabulary_is_the_union_and_carried_tokens_keep_their_names(finished):
    _, earlier = runs.open_run(finished / "out" / "atomic")
    _, data = runs.open_run(finished / "out" / "wider")
    own = generate(CompositionConfig(n_entities=50, n_relations=20, relations_per_entity=20, phi=3.0))
    assert data.vocab.tokens[: len(own.vocab)] == own.vocab.tokens  # its own ids are unchanged
    assert set(earlier.vocab.tokens) <= set(data.vocab.tokens)
    spell = lambda d, split: [[d.vocab.tokens[t] for t in row] for row in split.tokens]  # noqa: E731
    carried, original = data.probes["atomic--ood_atomic"], earlier.probes["ood_atomic"]
    assert len(carried) == len(original) and spell(data, carried) == spell(earlier, original)
    assert [data.vocab.tokens[a] for a in carried.answers] == [earlier.vocab.tokens[a] for a in original.answers]


def test_identical_earlier_probes_are_not_evaluated_twice():
    data = generate(CompositionConfig(n_entities=30, n_relations=10, relations_per_entity=10, phi=2.0))
    same = curriculum.with_earlier_probes(data, data, "before", 1000)
    assert same.probes.keys() == data.probes.keys() and same.vocab == data.vocab


def test_carried_probes_keep_the_stage_they_belong_to_and_colon_names_are_renamed():
    data = generate(CompositionConfig(n_entities=30, n_relations=10, relations_per_entity=10, phi=2.0))
    other = generate(CompositionConfig(n_entities=20, n_relations=10, relations_per_entity=10, phi=2.0, seed=1))
    old = other.probes["ood_atomic"]
    earlier = dataclasses.replace(other, probes={"ood_atomic": old, "first:ood_atomic": old, "zero--x": old})
    carried = curriculum.with_earlier_probes(data, earlier, "second", 0).probes
    assert {"second--ood_atomic", "first--ood_atomic", "zero--x"} <= carried.keys()
    assert not [name for name in carried if ":" in name]


def test_rerun_skips_finished_stages_and_resumes_the_interrupted_one_exactly(finished, tmp_path):
    shutil.copytree(finished / "out", tmp_path / "out")
    cut = tmp_path / "out" / "wider"
    steps = checkpoint.list_steps(cut)
    for step in steps[len(steps) // 2 + 1:]:  # a crash mid-stage: later checkpoints never happened
        shutil.rmtree(checkpoint.step_dir(cut, step))
    (cut / runs.SUMMARY).unlink()
    before = (tmp_path / "out" / "atomic" / runs.METRICS).stat().st_mtime_ns
    curriculum.run(curriculum.load(str(finished / "c.toml")), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "atomic" / runs.METRICS).stat().st_mtime_ns == before  # not trained again
    assert comparable(cut) == comparable(finished / "out" / "wider")


@pytest.mark.slow
def test_kill_9_mid_stage_then_rerun_equals_the_uninterrupted_curriculum(finished, tmp_path):
    env = os.environ | {"PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "groklab.cli", "curriculum", str(finished / "c.toml"), "--out",
               str(tmp_path / "out"), "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stage = tmp_path / "out" / "wider"
    while len(runs.list_steps(stage)) < 3 and proc.poll() is None:  # the warm start and two checkpoints of stage 2
        time.sleep(0.005)
    assert proc.poll() is None, "the curriculum finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not runs.is_finished(stage)
    subprocess.run(command, env=env, check=True, capture_output=True)
    for name in ("atomic", "wider"):
        assert comparable(tmp_path / "out" / name) == comparable(finished / "out" / name)


def test_a_different_plan_in_the_same_folder_is_refused(finished, capsys):
    code = main(["curriculum", str(finished / "c.toml"), "--out", str(finished / "out"), "--set", "train.seed=3"])
    err = capsys.readouterr().err
    assert code == 2 and "stage atomic differs" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "needs at least one [[stage]]"),
        ('[[stage]]\nname = "a"\n', 'needs name = "..." and config'),
        ('bogus = 1\n[[stage]]\nname = "a"\nconfig = "demo"\n', "unknown key bogus"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\nsteps = "many"\n', "stage.steps='many' must be of type int"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\nstart_from = "best"\n', "start_from='best' is not one of"),
        ('[[stage]]\nname = "a"\nconfig = "nope"\n', "config 'nope' not found"),
        ('[[stage]]\nname = "a/b"\nconfig = "demo"\n', "must be letters, digits"),
        ('[[stage]]\nname = "a--b"\nconfig = "demo"\n', "without -- (it separates stage and probe"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\n[[stage]]\nname = "a"\nconfig = "demo"\n', "two stages are named"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\n[stage.set]\n"model.n_layer" = 2\n', "unknown key model.n_layer"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\n[[stage]]\nname = "b"\nconfig = "demo"\n[stage.set]\n'
         '"model.d_model" = 128\n', "model.d_model is 64 there and 128 here"),
        ('[[stage]]\nname = "a"\nconfig = "demo"\n[[stage]]\nname = "b"\nconfig = "demo"\nwith_state = true\n'
         '[stage.set]\n"train.optimizer" = "muon"\n', "train.optimizer is adamw there and muon here"),
        ("[[stage]\n", "not valid TOML"),
    ],
)
def test_bad_curriculum_file_is_one_error_line(text, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(text)
    code = main(["curriculum", str(tmp_path / "c.toml")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "runs").exists()  # refused before anything is written


def test_shipped_curricula_validate():
    ladder = curriculum.load("ladder")
    assert [s.config.data.task for s in ladder.stages] == ["logic", "modular", "composition"]
    first = curriculum.load("atomic-then-inferred").stages[0]
    assert first.config.data.phi == 0 and not first.config.train.stop_on_grok
    scratch = curriculum.load("ladder", ["train.seed=2"], start_from="scratch")
    assert {s.start_from for s in scratch.stages} == {"scratch"} and scratch.stages[2].config.train.seed == 2
    assert np.all([s.config.train.threads == 1 for s in ladder.stages])


def test_earlier_probe_key_finds_same_facts_under_their_own_name():
    """A later stage on the same knowledge base evaluates an earlier stage's id_atomic under its own name (it is
    not carried twice): the forgetting table and figure must read it there, or the forgetting is invisible."""
    from groklab.runs import earlier_probe_key

    own = [{"step": 0, "id_atomic/acc": 1.0}, {"step": 50, "id_atomic/acc": 0.02}]
    assert earlier_probe_key(own, "atomic", "id_atomic") == "id_atomic/acc"
    carried = [{"step": 0, "atomic--id_atomic/acc": 0.9, "id_atomic/acc": 0.1}]
    assert earlier_probe_key(carried, "atomic", "id_atomic") == "atomic--id_atomic/acc"  # the carried one first
    assert earlier_probe_key(own, "atomic", "ood_atomic") is None
