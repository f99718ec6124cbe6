"""The registries are complete: every task states its probe roles and they name real probes; every analysis method
entry has every field, names tasks that exist and functions that import; checking a sweep file and reading a
run never import torch or the trainer. Adding a task or method without filling its entry fails here."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from groklab.analysis import methods
from groklab.tasks import TASKS, generate
from groklab.tasks.dataset import REQUIRED_ROLES, ROLE_MEANINGS
from groklab.tasks.io import load_dataset, write_dataset

FAST = {"complex": {"n_entities": 100, "n_test_per_label": 5}}  # every other task's defaults generate in < 1 s


@pytest.fixture(scope="module")
def small_data():
    cache = {}

    def get(task: str):
        if task not in cache:
            cache[task] = generate(TASKS[task].config(**FAST.get(task, {})))
        return cache[task]

    return get


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_states_its_probe_roles(task, small_data):
    spec = TASKS[task]
    assert set(REQUIRED_ROLES) <= set(spec.roles) <= set(ROLE_MEANINGS), spec.roles
    data = small_data(task)
    assert set(spec.roles.values()) <= set(data.probes)  # each role names a probe the task really has
    assert data.roles == spec.roles  # the generator's roles are the ones the registry states


FACT_FIELDS = {  # the structure fields every task of a fact shape has: what LLM prompts and the paper's format read
    "chain": {"head", "r1", "r2", "bridge", "answer"},
    "compare": {"attribute", "entity", "value", "e1", "e2", "v1", "v2", "answer"},
}


@pytest.mark.parametrize("task", [t for t in TASKS if TASKS[t].facts or TASKS[t].paper])
def test_every_knowledge_task_states_its_fact_shape_and_paper_spelling(task, small_data, tmp_path):
    spec, data = TASKS[task], small_data(task)
    assert spec.facts in FACT_FIELDS, f"{task}: a paper format needs facts='chain' or 'compare'"
    for split in (data.train, *data.probes.values()):
        assert FACT_FIELDS[spec.facts] <= set(split.fields), (task, sorted(split.fields))
    if spec.paper is not None:  # every fact kind has a template, and the files read back as this task
        assert set(spec.paper.templates) >= set(data.train.kinds.tolist())
        write_dataset(data, {}, tmp_path / "paper", fmt="paper")
        back = load_dataset(tmp_path / "paper")
        assert back.task == task and len(back.train) == len(data.train)


def test_task_lists_come_from_the_registry():
    from groklab.cli import build_parser
    from groklab.llm import prompts
    from groklab.tasks import io

    data_help = next(a.help for a in build_parser()._subparsers._group_actions[0].choices["data"]._actions
                     if a.dest == "task")
    assert data_help.split(" | ") == [t for t in TASKS if not TASKS[t].sequence]
    assert set(prompts.TASKS) == {t for t in TASKS if TASKS[t].facts}
    assert set(io.PAPER_TASKS) == {t for t in TASKS if TASKS[t].paper} == {"composition", "comparison", "complex"}


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_every_analysis_method_entry_is_complete(name, small_data):
    entry = methods.METHODS[name]
    assert entry.name == name
    for field in dataclasses.fields(entry):
        assert getattr(entry, field.name), f"{name}: {field.name} is empty"
    assert set(entry.tasks) <= set(TASKS), f"{name} names unknown tasks"
    assert callable(methods.load(entry.prepare))
    for suffix, figure in entry.figures:
        assert suffix.endswith(".png") and callable(methods.load(figure)), (suffix, figure)
    for task in entry.tasks:  # the default split is a probe of every task the method applies to
        data = small_data(task)
        assert entry.default_split(data) in data.probes, (name, task)


def test_unknown_method_is_one_line_naming_the_choices():
    with pytest.raises(Exception, match="choose one of logit-lens, causal-tracing, tree-projection"):
        methods.get("lens")


def test_checking_a_sweep_file_and_reading_runs_import_neither_torch_nor_the_trainer(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('base = "demo"\n[grid]\n"data.phi" = [9]\n[analyze]\nmethods = ["logit-lens", "causal-tracing"]\n')
    code = (
        "import sys; from groklab import sweep_file, runs, results; "
        f"sweep_file.load({str(sweep)!r}); "
        "print(sorted(m for m in ('torch', 'groklab.train', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_readers_of_runs_never_import_the_trainer():
    code = (
        "import sys; import groklab.analysis.over_checkpoints, groklab.export, groklab.report, groklab.sweep; "
        "print('groklab.train' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
