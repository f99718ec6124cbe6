"""Sizes refused up front (groklab/sizes.py): a data or model size this machine cannot hold is one `error:` line,
at once and before anything is generated, naming the estimate, what is available and the knob to lower; every
shipped preset passes; every task states its size."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from groklab import api, config, sizes, train  # noqa: F401  (imported here: the timings below are the refusal's)
from groklab.cli import main
from groklab.errors import UserError
from groklab.tasks import TASKS, generate

GB = 10**9
PRESETS = sorted(p.stem for p in config.PRESET_DIR.glob("*.toml"))
# per task, a size no machine holds: (the knob's override, the knob named in the error)
ABSURD = {
    "composition": ("data.n_entities=100000000", "data.n_entities (100,000,000)"),
    "comparison": ("data.n_entities=10000000", "data.n_entities (10,000,000)"),
    "complex": ("data.n_entities=10000000", "data.n_entities (10,000,000)"),
    "modular": ("data.modulus=10000019", "data.modulus (10,000,019)"),
    "logic": ("data.probe_size=1000000000", "data.probe_size (1,000,000,000)"),
    "question-formation": ("data.n_train=1000000000", "data.n_train (1,000,000,000)"),
    "tense-inflection": ("data.n_train=1000000000", "data.n_train (1,000,000,000)"),
    "dyck": ("data.n_train=1000000000", "data.n_train (1,000,000,000)"),
}


def run_cli(args, capsys):
    tic = time.perf_counter()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err, time.perf_counter() - tic


def test_every_task_states_its_size_and_has_an_absurd_case_here():
    assert set(ABSURD) == set(TASKS)
    for name, spec in TASKS.items():
        size = spec.config(task=name).size()
        assert isinstance(size, sizes.DataSize) and size.rows > 0 and size.n_ctx > 0 and size.vocab > 1, name
        assert size.knobs and all(k.startswith("data.") for k in size.knobs), name


@pytest.mark.parametrize("task", ["composition", "comparison", "modular"])
def test_groklab_data_refuses_an_absurd_size_at_once(task, tmp_path, capsys):
    override, knob = ABSURD[task]
    code, out, err, seconds = run_cli(["data", task, "--out", tmp_path / "d", "--set", override], capsys)
    assert code == 2 and out == "" and seconds < 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: data.task='{task}' needs about ")
    assert " GB of memory" in err and " available; lower " in err and knob in err
    assert not (tmp_path / "d").exists()  # nothing written


@pytest.mark.parametrize("task", ["composition", "comparison", "modular"])
def test_training_refuses_an_absurd_size_before_any_data_or_run_folder(task, tmp_path, capsys):
    preset = {"composition": "demo", "comparison": "comparison-small", "modular": "modular-p97"}[task]
    override, knob = ABSURD[task]
    code, _, err, seconds = run_cli(["train", preset, "--set", override, "--out", tmp_path / "run"], capsys)
    assert code == 2 and seconds < 2 and len(err.strip().splitlines()) == 1
    assert "model with optimiser state" in err and "activations at train.batch_size=" in err and knob in err
    assert not (tmp_path / "run").exists()


def test_every_task_refuses_its_absurd_size_in_python_too():
    for task, (override, knob) in ABSURD.items():
        key, _, value = override.partition("=")
        cfg = TASKS[task].config(task=task, **{key.removeprefix("data."): int(value)})
        tic = time.perf_counter()
        with pytest.raises(UserError, match="available; lower ") as refused:
            generate(cfg)
        assert time.perf_counter() - tic < 2 and knob in str(refused.value), task


@pytest.mark.parametrize("preset", PRESETS)
def test_every_shipped_preset_passes(preset):
    """The presets fit a small machine (4 GB, the paper-sized ones included) and pass here."""
    cfg = config.load(preset)
    estimate, _ = sizes.estimate_run(cfg)
    assert estimate.total < 4 * GB, (preset, estimate)
    sizes.check_run(cfg, available=4 * GB)
    sizes.check_run(cfg)


def test_the_knob_named_is_the_part_that_is_too_big():
    cfg = config.load("demo")
    assert sizes.estimate_run(config.load("demo", ["data.n_entities=10000000"]))[1][0] == "data.n_entities"
    with pytest.raises(UserError, match=r"lower model\.d_model \(65,536\) or model\.n_layers"):
        sizes.check_run(config.load("demo", ["model.d_model=65536", "model.d_mlp=262144"]), available=GB)
    with pytest.raises(UserError, match=r"lower train\.batch_size \(100,000,000\)$"):
        sizes.check_run(config.load("demo", ["train.batch_size=100000000"]), available=GB)
    sizes.check_run(cfg, available=GB)  # the demo fits in 1 GB


def test_the_estimate_counts_what_the_generator_builds():
    """Rows, context and vocabulary against generated data; the byte estimate is an upper bound of the arrays."""
    for preset in ("demo", "comparison-small", "complex-small", "modular-p97", "logic", "tense-inflection"):
        cfg = config.load(preset)
        size, data = cfg.data.size(), generate(cfg.data)
        rows = len(data.train) + sum(len(p) for p in data.probes.values())
        arrays = sum(a.nbytes for s in (data.train, *data.probes.values()) for a in
                     (s.tokens, s.lengths, s.answers, *s.fields.values(), *(() if s.targets is None else (s.targets,))))
        assert rows <= size.rows <= 3 * rows, (preset, rows, size.rows)
        assert data.n_ctx <= size.n_ctx and len(data.vocab) <= size.vocab, preset
        assert arrays < size.bytes, preset


def test_available_memory_is_read_from_the_machine():
    found = sizes.available_bytes()
    if Path("/proc/meminfo").is_file():
        assert found is not None and 10**8 < found < 10**14
