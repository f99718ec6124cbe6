"""CLI: bad input ends in one `error:` line (exit 2) and leaves nothing behind; the guide's commands run."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from groklab.cli import main
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guide.md"


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "demo", "--set", "model.n_layer=3"], "valid keys in [model]"),
        (["train", "demo", "--set", "data.bogus=1"], "valid keys in [data]"),
        (["train", "demo", "--set", "model.d_model=130"], "not divisible"),
        (["train", "demo", "--set", "model.n_layers=two"], "must be of type int"),
        (["train", "demo", "--set", "nodot"], "section.key=value"),
        (["train", "demo", "--set", "optim.lr=1"], "unknown section"),
        (["train", "no-such-preset"], "not found"),
        (["train"], "give a config"),
        (["train", "--resume", "does/not/exist"], "config.json is missing"),
        (["train", "demo", "--data", "does/not/exist"], "does/not/exist"),
        (["data", "nonsense", "--out", "x"], "data.task='nonsense' is unknown"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_bad_toml_file(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nn_layers = 2")
    code, _, err = run_cli(["train", str(bad)], capsys)
    assert code == 2 and "not valid TOML" in err


def test_refuses_to_mix_runs(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("x")
    code, _, err = run_cli(["train", "demo", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "--resume" in err


def test_train_and_resume_via_cli(capsys, tmp_path):
    args = ["train", "demo", "--quiet", "--out", str(tmp_path / "run")]
    for item in TINY:
        args += ["--set", item]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "grok step" in out and (tmp_path / "run" / "accuracy.png").stat().st_size > 1000
    code, out, _ = run_cli(["train", "--resume", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0 and "final step" in out


def test_a_run_trains_again_from_its_folder(capsys, tmp_path):
    """`groklab train RUN_DIR` takes the run's config.json; the same seed gives the same run, --set changes it."""
    args = ["train", "demo", "--quiet", "--out", str(tmp_path / "first")]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args, capsys)[0] == 0
    assert run_cli(["train", str(tmp_path / "first"), "--quiet", "--out", str(tmp_path / "again")], capsys)[0] == 0
    first, again = ((tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("first", "again"))
    drop_time = [re.sub(r'"elapsed_s": [0-9.e+-]+, ', "", line) for line in first + again]
    assert drop_time[: len(first)] == drop_time[len(first):] and len(first) > 2
    other = ["train", str(tmp_path / "first" / "config.json"), "--quiet", "--set", "data.seed=9", "--out"]
    assert run_cli(other + [str(tmp_path / "other")], capsys)[0] == 0
    assert json.loads((tmp_path / "other" / "config.json").read_text())["data"]["seed"] == 9


SMALL_DATA = ["--set", "n_entities=60"]
SMALL_TRAIN = (
    ["--quiet"]
    + [x for item in TINY for x in ("--set", item)]
    + ["--set", "model.n_unique_blocks=0", "--set", "model.dropout=0.0"]
)


def guide_commands() -> list[list[str]]:
    block = re.search(r"## The command line\n\n```bash\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("groklab ")]


def test_guide_commands_run(capsys, tmp_path, monkeypatch):
    """Each `groklab` line of the guide's command-line section runs, shrunk to test size with extra --set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the guide's paths are relative to the repo root
    commands = guide_commands()
    assert len(commands) >= 5
    for args in commands:
        if args[0] == "data":
            args = args + SMALL_DATA
        elif args[0] == "train" and "--resume" not in args:
            args = args + SMALL_TRAIN
        code, _, err = run_cli(args, capsys)
        assert code == 0, f"groklab {' '.join(args)} failed: {err}"


def test_a_comparison_run_reads_its_accuracy_against_the_label_prior_and_the_ranking_shortcut(capsys, tmp_path):
    tiny = [x for item in TINY if not item.startswith("data.phi") for x in ("--set", item)]
    args = ["train", "comparison-small", "--quiet", "--out", str(tmp_path / "run"), *tiny]
    code, out, _ = run_cli(args + ["--set", "data.n_attributes=3", "--set", "train.steps=20"], capsys)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert code == 0 and set(summary["shortcut"]) == {"train_inferred", "test_inferred_id", "test_inferred_ood"}
    line = next(x for x in out.splitlines() if x.startswith("final accuracy test_inferred_id"))
    assert f"ranking shortcut {summary['shortcut']['test_inferred_id']:.3f}" in line and "no-information" in line
