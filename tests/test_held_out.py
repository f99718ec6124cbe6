"""The held-out protocol of `groklab claims --check` (groklab/held_out.py): each violation is one line, a clean
claim passes, and on the committed records it catches held-out seeds that ran in an exploration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groklab import claims, held_out
from groklab.cli import main
from groklab.errors import UserError

FROZEN = {"data": {"task": "modular"}, "model": {"n_layers": 1}, "train": {"steps": 300}}
TOML = '[data]\ntask = "modular"\n\n[model]\nn_layers = 1\n\n[train]\nsteps = 300\n'


def write_config(folder: Path, seed: int, **train) -> Path:
    folder.mkdir(parents=True)
    cfg = json.loads(json.dumps(FROZEN))
    cfg["train"] |= {"seed": seed, **train}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "summary.json").write_text(json.dumps({"grok_step": 100 + seed}))
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a frozen setting, a tuning run (seed 0), held-out runs (seeds 1, 2) and explorations
    that used the tuning seed, and a held-out seed only at another task."""
    (tmp_path / "frozen.toml").write_text(TOML)
    runs = tmp_path / "docs" / "runs"
    write_config(runs / "grid" / "seed=0", 0, lr=0.01)  # a tuning run may differ from the frozen setting
    write_config(runs / "grid" / "seed=1", 1, threads=1)  # bookkeeping is not the setting
    write_config(runs / "grid" / "seed=2", 2)
    write_config(runs / "exploration-a" / "lr-s0", 0, lr=0.01)
    other = write_config(runs / "exploration-a" / "comp-s1", 1)
    (other / "config.json").write_text(json.dumps({"data": {"task": "composition"}, "train": {"seed": 1}}))
    return tmp_path


def seeds(**fields) -> held_out.Seeds:
    entry = {"tuning_seeds": [0], "held_out_seeds": [1, 2], "frozen_config": "frozen.toml"} | fields
    return held_out.parse({k: v for k, v in entry.items() if v is not None})


def problems(repo: Path, s: held_out.Seeds, pattern: str = "grid/*") -> list[str]:
    runs = repo / "docs" / "runs"
    return held_out.check("claim", s, sorted(runs.glob(pattern)), repo, runs)


def test_a_clean_claim_passes(repo):
    assert problems(repo, seeds()) == []


def test_a_held_out_run_that_differs_from_the_frozen_config_fails(repo):
    cfg = repo / "docs" / "runs" / "grid" / "seed=2" / "config.json"
    raw = json.loads(cfg.read_text())
    raw["train"]["steps"] = 400
    cfg.write_text(json.dumps(raw))
    [line] = problems(repo, seeds())
    assert "held-out run grid/seed=2 differs from the frozen config frozen.toml in train.steps=400 (frozen 300)" in line


def test_a_held_out_seed_in_an_exploration_of_the_same_setting_fails(repo):
    write_config(repo / "docs" / "runs" / "exploration-b" / "deep" / "wd-s2", 2, weight_decay=1.0)
    [line] = problems(repo, seeds())
    assert "held-out seed 2 appears in exploration run exploration-b/deep/wd-s2 (data.task='modular')" in line
    # seed 1 ran in exploration too, but at another task: not the same setting by default; `setting_keys` that
    # both explorations share with the frozen config make it one
    assert len(problems(repo, seeds(setting_keys=["model.init"]))) == 2


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"held_out_seeds": None}, "names no held_out_seeds; add tuning_seeds"),
        ({"held_out_seeds": [], "tuning_seeds": [0, 1, 2]}, "held_out_seeds = [] without a seeds_note"),
        ({"tuning_seeds": [0, 1]}, "seed 1 is in tuning_seeds and held_out_seeds"),
        ({"tuning_seeds": []}, "run grid/seed=0 has seed 0, in neither tuning_seeds nor held_out_seeds"),
        ({"held_out_seeds": [1, 2, 3]}, "held-out seed 3 has 0 runs among the claim's runs (none)"),
        ({"frozen_config": None}, "has held-out seeds but no frozen_config"),
        ({"frozen_config": "gone.toml"}, "frozen_config 'gone.toml' is not a file under"),
        ({"seed_keys": ["train.seed", "data.seed"]}, "has no single seed (train.seed=0, data.seed=None)"),
    ],
)
def test_each_violation_is_one_line(repo, fields, needle):
    found = problems(repo, seeds(**fields))
    assert any(needle in line for line in found), found
    assert all("\n" not in line for line in found)


def test_a_held_out_seed_run_twice_fails(repo):
    write_config(repo / "docs" / "runs" / "rerun" / "seed=1", 1)
    found = problems(repo, seeds(), "*/seed=*")
    assert any("held-out seed 1 has 2 runs" in line and "a held-out seed is run once" in line for line in found)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"held_out_seeds": "1"}, "held_out_seeds must be a list of seeds"),
        ({"tuning_seeds": [-1]}, "tuning_seeds must be a list of seeds (ints >= 0)"),
        ({"seed_keys": []}, "seed_keys must be a non-empty list"),
        ({"frozen_config": ""}, "frozen_config must be a non-empty string"),
    ],
)
def test_bad_seed_fields_are_refused(entry, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        held_out.parse(entry)


RESULTS = "# results\n\n<!-- claims:begin -->\n<!-- claims:end -->\n\n## Grid\n"
CLAIM = """[[claim]]
claim = "The grid groks"
section = "Grid"
runs = ["grid/*"]
measure = ["grok_step"]
verdict = "yes"
tuning_seeds = [0]
held_out_seeds = [1, 2]
frozen_config = "frozen.toml"
"""


def test_claims_check_prints_one_line_per_violation(repo, capsys):
    docs = repo / "docs"
    (docs / "results.md").write_text(RESULTS)
    (docs / "claims.toml").write_text(CLAIM)
    assert main(["claims", "--docs", str(docs)]) == 0
    assert main(["claims", "--docs", str(docs), "--check"]) == 0
    write_config(docs / "runs" / "exploration-b" / "s1", 1)
    (docs / "claims.toml").write_text(CLAIM.replace("[1, 2]", "[1, 2, 3]"))
    capsys.readouterr()
    assert main(["claims", "--docs", str(docs), "--check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("error: 2 violation(s) of the held-out protocol")
    assert "held-out seed 3 has 0 runs" in lines[1] and "held-out seed 1 appears in exploration run" in lines[2]
    assert len(lines) == 3


def test_on_the_committed_records_held_out_demo_seeds_would_fail():
    """The memorise-first demo's seeds 4–8 ran at candidate settings in exploration-2026-12-03b: declaring them
    held out is caught, one line per exploration run."""
    runs = Path(__file__).parents[1] / "docs" / "runs"
    demo = sorted(runs.glob("demo-memorise-first/seed-*"))
    s = seeds(tuning_seeds=[0], held_out_seeds=[4, 5, 6, 7, 8],
              frozen_config="docs/runs/demo-memorise-first/seed-0/config.json", seed_keys=["train.seed", "data.seed"])
    found = held_out.check("demo", s, demo, runs.parents[1], runs)
    assert any("held-out seed 5 appears in exploration run exploration-2026-12-03b/mf-E100-s5" in p for p in found)
    assert not any("differs from the frozen config" in p for p in found)  # seeds 4–8 are the demo's setting
    assert {int(p.split("held-out seed ")[1].split()[0]) for p in found} == {4, 5, 6, 7, 8}


def test_every_committed_claim_names_its_seeds():
    docs = Path(__file__).parents[1] / "docs"
    every = claims.load_claims(docs / "claims.toml")
    claims.check_seeds(every, docs)  # raises on any violation
    assert all(c.seeds.held_out is not None for c in every)
