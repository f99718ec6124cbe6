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
