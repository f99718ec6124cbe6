"""The config toolkit: every float field of every section refuses NaN and ±inf, every `Literal` field refuses a
value outside its choices and lists them, in one error line naming the key, before any run folder exists."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

import pytest

from groklab import config
from groklab.cli import main
from groklab.errors import UserError
from groklab.tasks import TASKS, TaskSpec

CORE = {"model": config.ModelConfig, "train": config.TrainConfig, "filter": config.FilterConfig,
        "accelerator": config.AcceleratorConfig}


def section_classes(task: str) -> dict[str, type]:
    return {"data": TASKS[task].config, **CORE}


def fields_where(cls: type, keep) -> list[tuple[str, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if keep(hints[f.name])]


def is_float(hint) -> bool:
    return hint is float or (typing.get_origin(hint) is tuple and float in typing.get_args(hint))


def is_literal(hint) -> bool:
    return typing.get_origin(hint) is typing.Literal


def cases(keep) -> list[tuple[str, str, str, typing.Any]]:
    """(task, section, field, annotation) for every matching field; core sections once, under composition."""
    out = []
    for task in TASKS:
        for section, cls in section_classes(task).items():
            if section == "data" or task == "composition":
                out += [(task, section, name, hint) for name, hint in fields_where(cls, keep)]
    return out


FLOATS, LITERALS = cases(is_float), cases(is_literal)


def raw_config(task: str, section: str, name: str, value) -> dict:
    raw: dict = {"data": {"task": task}}
    raw.setdefault(section, {})[name] = value
    return raw


def one_line_error(raw: dict) -> str:
    with pytest.raises(UserError) as info:
        config.from_dict(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_section_has_float_and_choice_fields_to_check():
    assert {s for _, s, _, _ in FLOATS} == {"data", "model", "train", "filter", "accelerator"}
    assert {s for _, s, _, _ in LITERALS} == {"data", "model", "train", "filter"}
    assert ("modular", "data", "operation") in {c[:3] for c in LITERALS}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("task", "section", "name", "hint"), FLOATS, ids=[f"{c[0]}-{c[1]}.{c[2]}" for c in FLOATS])
def test_non_finite_floats_are_refused_in_every_section(task, section, name, hint, bad):
    value = [0.9, bad] if typing.get_origin(hint) is tuple else bad
    message = one_line_error(raw_config(task, section, name, value))
    assert message.startswith(f"{section}.{name}=") and "must be finite" in message, message
    assert "e.g. the default" in message  # the fix


@pytest.mark.parametrize(("task", "section", "name", "hint"), LITERALS, ids=[f"{c[0]}-{c[1]}.{c[2]}" for c in LITERALS])
def test_literal_choices_are_checked_in_one_place(task, section, name, hint):
    options = typing.get_args(hint)
    message = one_line_error(raw_config(task, section, name, "bogus"))
    assert message == f"{section}.{name}='bogus' is not one of {', '.join(options)}"
    for option in options:  # every listed choice is accepted
        assert getattr(getattr(config.from_dict(raw_config(task, section, name, option)), section), name) == option


def test_choices_match_the_tables_that_use_them():
    from groklab.tasks import comparison, modular

    hints = typing.get_type_hints
    assert typing.get_args(hints(modular.ModularConfig)["operation"]) == tuple(modular.OPERATIONS)
    assert typing.get_args(hints(comparison.ComparisonConfig)["template"]) == tuple(comparison.TEMPLATE_POSITIONS)


def test_the_literal_error_reads_as_documented():
    assert one_line_error(raw_config("composition", "model", "init", "x")) == "model.init='x' is not one of gpt2, torch"


def test_sections_built_in_python_are_checked_by_validate():
    data = TASKS["composition"].config()
    with pytest.raises(UserError, match=r"^train\.lr=nan must be finite"):
        config.RunConfig(data=data, train=config.TrainConfig(lr=math.nan)).validate()
    with pytest.raises(UserError, match=r"^model\.init='x' is not one of gpt2, torch$"):
        config.RunConfig(data=data, model=config.ModelConfig(init="x")).validate()  # type: ignore[arg-type]


def test_a_field_added_to_a_task_config_later_is_checked_too(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Extended(TASKS["composition"].config):
        template: str = "paper"
        gain: float = 1.0

    spec = TASKS["composition"]
    monkeypatch.setitem(TASKS, "composition", TaskSpec(Extended, spec.generate, spec.roles))
    cfg = config.from_dict(raw_config("composition", "data", "template", "other"))
    assert (cfg.data.template, cfg.data.gain) == ("other", 1.0)
    message = one_line_error(raw_config("composition", "data", "gain", math.inf))
    assert message.startswith("data.gain=inf must be finite")
    assert "valid keys in [data]:" in one_line_error(raw_config("composition", "data", "templat", "x"))


def test_betas_outside_what_adam_accepts_are_refused():
    message = one_line_error({"data": {"task": "composition"}, "train": {"betas": [0.9, 1.5]}})
    assert message.startswith("train.betas=[0.9, 1.5] must both be in [0, 1)")


def test_nan_learning_rate_on_the_cli_is_one_line_and_leaves_no_run_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "demo", "--set", "train.lr=nan", "--out", str(tmp_path / "X")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: train.lr=nan must be finite"), err
    assert "e.g. the default train.lr=0.001" in lines[0]
    assert not (tmp_path / "X").exists() and not (tmp_path / "runs").exists()


def test_nan_in_a_sweep_grid_stops_the_sweep_in_one_line(capsys, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('base = "demo"\n[grid]\n"train.lr" = [0.001, nan]\n')
    code = main(["sweep", str(sweep), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "run lr=nan: train.lr=nan must be finite" in lines[0], lines
    assert not (tmp_path / "out").exists()


# ---- the toolkit's pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(9.0, "9"), (1e-4, "0.0001"), (0.1 + 0.2, "0.30000000000000004"), (True, "true"), ("ema", "'ema'"),
     ((0.9, 0.98), "[0.9, 0.98]"), (math.nan, "nan"), (-math.inf, "-inf"), (3, "3")],
)
def test_values_are_written_as_they_are_typed(value, text):
    assert config.format_value(value) == text
    if not (isinstance(value, float) and math.isnan(value)):
        assert config.parse_value(text) == (list(value) if isinstance(value, tuple) else value)  # round trip


def test_dotted_keys():
    assert config.split_key("model.n_layers") == ("model", "n_layers")
    for bad in ("phi", "model.", "a.b.c", "model.n.layers"):
        with pytest.raises(UserError, match="must be section.name"):
            config.split_key(bad)
    with pytest.raises(UserError, match="unknown section 'optim'"):
        config.split_key("optim.lr")
    raw = {"model": {"n_layers": 2}}
    assert config.set_dotted(raw, {"model.d_model": 8, "train.lr": 0.1}) == {
        "model": {"n_layers": 2, "d_model": 8}, "train": {"lr": 0.1}
    }
    assert raw == {"model": {"n_layers": 2}}  # a copy
    assert config.flatten({"model": {"n_layers": 2}, "x": 1}) == {"model.n_layers": 2, "x": 1}
    with pytest.raises(UserError, match=r"^\[model\] must be a table"):
        config.set_dotted({"model": 3}, {"model.n_layers": 2})


def test_unknown_keys_name_the_valid_ones():
    with pytest.raises(UserError, match=r"^unknown key model\.n_layer; valid keys in \[model\]: activation, d_mlp"):
        config.load("demo", ["model.n_layer=3"])
    with pytest.raises(UserError, match=r"^unknown key optim; valid keys at a config's top level: accelerator, data,"):
        config.from_dict({"data": {"task": "composition"}, "optim": {}})


def test_a_file_that_is_not_toml_is_named(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(UserError, match="bad.toml: not valid TOML"):
        config.read_toml(bad)


def test_a_run_trains_again_from_its_config_json_or_folder(tmp_path: Path):
    original = config.load("demo", ["data.n_entities=120", "train.steps=777"])
    run = tmp_path / "run"
    run.mkdir()
    (run / config.RUN_CONFIG).write_text(json.dumps(original.to_dict()))
    assert config.load(str(run / config.RUN_CONFIG)) == original
    assert config.load(str(run)) == original  # the folder stands for its config.json
    again = config.load(str(run), ["data.seed=5"])
    assert again.data.seed == 5 and again.data.n_entities == 120 and again.train.steps == 777


def test_a_committed_run_config_loads():
    """Every run recorded under docs/runs/ (a config with a [data] section; benchmark records have none) can be
    trained again from its config.json: the settings it names still exist."""
    runs = [p for p in (Path(__file__).parents[1] / "docs" / "runs").rglob(config.RUN_CONFIG)
            if "data" in json.loads(p.read_text())]
    assert len(runs) > 100
    for path in runs:
        config.load(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "a JSON config must be an object of sections"),
        ('{"data": 3}', "a JSON config must be an object of sections"),
    ],
)
def test_a_bad_json_config_is_one_error_line(tmp_path: Path, text, message):
    bad = tmp_path / "config.json"
    bad.write_text(text)
    with pytest.raises(UserError, match=message):
        config.load(str(bad))


def test_a_folder_without_config_json_is_named(tmp_path: Path):
    with pytest.raises(UserError, match="is a folder without config.json; give a TOML file, a preset or a run"):
        config.load(str(tmp_path))


@pytest.mark.parametrize("preset", sorted(p.stem for p in config.PRESET_DIR.glob("*.toml")))
def test_every_shipped_preset_loads_and_validates(preset):
    cfg = config.load(preset)
    assert cfg.data.task in TASKS and cfg.train.steps > 0


# --- committed records keep loading ------------------------------------------------------------------------
RUNS = Path(__file__).parents[1] / "docs" / "runs"
BENCHMARK = "benchmark.json"  # a benchmark's folder: its seeds' config.json are the benchmark's, not a run's


def committed_configs() -> list[Path]:
    return sorted(RUNS.rglob(config.RUN_CONFIG))


def test_every_committed_run_config_still_loads():
    """Every docs/runs/**/config.json trains again from its record: keys that moved since it was written
    (`train.muon_lr` → `accelerator.muon_lr`) are read under their new name, with the same value."""
    paths = committed_configs()
    assert len(paths) > 300, "docs/runs/ should hold the committed runs"
    loaded = 0
    for path in paths:
        raw = json.loads(path.read_text())
        if any((folder / BENCHMARK).is_file() for folder in path.parents if RUNS in folder.parents):
            assert "benchmark" in raw, path  # a benchmark's own settings, not a run config
            continue
        cfg = config.load(str(path))
        assert cfg.data.task == raw["data"]["task"], path
        if "muon_lr" in raw.get("train", {}):
            assert cfg.accelerator.muon_lr == raw["train"]["muon_lr"], path
        loaded += 1
    assert loaded > 300


def test_a_moved_key_reads_under_its_new_name_everywhere():
    old = {"data": {"task": "modular"}, "train": {"muon_lr": 0.04, "optimizer": "muon"}}
    cfg = config.from_dict(old)
    assert cfg.accelerator.muon_lr == 0.04
    assert "muon_lr" not in cfg.to_dict()["train"] and cfg.to_dict()["accelerator"]["muon_lr"] == 0.04
    assert old["train"]["muon_lr"] == 0.04  # the caller's dict is left as it was
    assert config.load("demo", ["train.muon_lr=0.03"]).accelerator.muon_lr == 0.03  # --set, sweep grids alike
    with pytest.raises(UserError, match="train.muon_lr=0.04 and accelerator.muon_lr=0.01 disagree; keep only"):
        config.from_dict(old | {"accelerator": {"muon_lr": 0.01}})

