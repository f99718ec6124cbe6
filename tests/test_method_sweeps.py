"""Sweeps that compare methods over seeds ([methods] tables): expansion and names, one-line errors, the
per-method statistics (censored medians, bootstrap intervals, best setting, speed-ups) and the report section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from groklab import method_stats, sweep_file
from groklab.cli import main
from groklab.results import RunResult
from tests.test_sweep import FIXED

METHODS = """
baseline = "adamw"
description = "two methods"
[fixed]
{fixed}
[grid]
"train.seed" = [0, 1]
[methods.adamw]
set = {{ "train.optimizer" = "adamw", "filter.kind" = "none" }}
grid = {{ "train.weight_decay" = [0.1, 1.0] }}
[methods.orthograd]
set = {{ "train.grad_transform" = "orthograd", "train.weight_decay" = 0.0 }}
"""


def write(tmp_path: Path, text: str, base: str = 'base = "demo"') -> Path:
    path = tmp_path / "m.toml"
    path.write_text(base + "\n" + text)
    return path


def test_methods_expand_with_their_own_grids_over_the_seeds(tmp_path):
    spec = sweep_file.load(str(write(tmp_path, METHODS.format(fixed=FIXED))))
    assert spec.keys == ["method", "train.weight_decay", "train.seed"] and spec.baseline == "adamw"
    points = sweep_file.expand(spec)
    assert [p.name for p in points] == [
        "method=adamw,weight_decay=0.1,seed=0", "method=adamw,weight_decay=0.1,seed=1",
        "method=adamw,weight_decay=1,seed=0", "method=adamw,weight_decay=1,seed=1",
        "method=orthograd,seed=0", "method=orthograd,seed=1",
    ]
    wd = {p.name: (p.config.train.weight_decay, p.config.filter.kind, p.config.train.grad_transform) for p in points}
    assert wd["method=adamw,weight_decay=1,seed=1"] == (1.0, "none", "none")
    assert wd["method=orthograd,seed=0"] == (0.0, "ema", "orthograd")  # demo's filter; its set overrides nothing else
    assert points[-1].config.model.n_layers == 2  # [fixed] reaches every method


@pytest.mark.parametrize("text, message", [
    ('[grid]\n"train.seed" = [0]\n[methods.a]\nset = { "train.seed" = 1 }', "which [grid] sweeps"),
    ('baseline = "b"\n[grid]\n"train.seed" = [0]\n[methods.a]\nset = { "train.lr" = 0.1 }', "must name one of"),
    ('[grid]\n"train.seed" = [0]\n[methods.a]\nsets = { "train.lr" = 0.1 }', "sets"),
    ('[grid]\n"train.seed" = [0]\n[methods.a]\ngrid = { "train.lr" = 0.1 }', "non-empty list"),
    ('[grid]\n"train.seed" = [0]\n[methods.a]\nset = { "train.lrr" = 0.1 }', "lrr"),
    ('[grid]\n"train.seed" = [0]\n[methods.a]\nset = { "train.lr" = 1 }\ngrid = { "train.lr" = [1, 2] }',
     "both in set and in grid"),
])
def test_bad_method_tables_give_one_error_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err


def result(method: str, wd: float, seed: int, grok: int | None, budget: int = 1000, wall: float = 10.0) -> RunResult:
    config = {"method": method, "train.weight_decay": wd, "train.seed": seed, "train.steps": budget}
    stats = {"grok_step": grok, "fit_step": 10, "elapsed_s": wall, "roles": {}, "final": {}}
    return RunResult(f"{method}-{wd}-{seed}", Path("."), config, [], stats, finished=True)


def test_statistics_censor_never_grokked_runs_and_pick_each_methods_best_setting():
    keys = ["method", "train.weight_decay", "train.seed"]
    results = [result("adamw", 0.1, s, g) for s, g in enumerate([None, None, 900, None, 800])]
    results += [result("adamw", 1.0, s, g) for s, g in enumerate([400, 500, 600, 700, None])]
    results += [result("fast", 0.0, s, g, wall=5.0) for s, g in enumerate([100, 120, 140, 160, 180])]
    variants = method_stats.variants(results, keys)
    assert [(v.method, v.setting) for v in variants] == [
        ("adamw", "weight_decay=0.1"), ("adamw", "weight_decay=1"), ("fast", "")]
    weak, strong, fast = variants
    assert weak.grokked == 2 and math.isinf(weak.median_steps)  # 3 of 5 never grokked: the median is censored
    assert strong.grokked == 4 and strong.median_steps == 600
    lo, hi = strong.median_ci()
    assert 400 <= lo <= 600 <= hi  # an interval around the median, inf allowed at the top
    assert [v.setting for v in method_stats.best_per_method(variants)] == ["weight_decay=1", ""]
    bound, point, rlo, rhi = method_stats.speedup(strong, fast)
    assert bound == "" and point == pytest.approx(600 / 140) and rlo <= point <= rhi
    bound, point, _, _ = method_stats.speedup(strong, weak)  # weak's median is censored at its 1,000 budget
    assert bound == "≤" and point == pytest.approx(0.6)
    header, rows = method_stats.table(variants, baseline="adamw")
    assert rows[0][:5] == ["adamw", "weight_decay=1", "★", "4/5", "600"] and rows[1][4] == "> 1,000"
    assert rows[0][7] == "—" and rows[1][7].startswith("≤×0.60")  # the baseline itself; a censored setting
    assert rows[2][0] == "fast" and rows[2][7].startswith("×4.29") and rows[0][6] == "10"


def test_a_methods_sweep_trains_and_reports_per_method(tmp_path, capsys):
    path = write(tmp_path, METHODS.format(fixed=FIXED))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "1"]) == 0
    assert main(["report", str(out)]) == 0
    text = (out / "report" / "methods.txt").read_text()
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["method", "setting"] and len(lines) == 2 + 3  # header, rule, 3 settings
    assert sum("★" in line for line in lines) == 2  # one best setting per method
    assert (out / "report" / "steps-to-grok-by-method.png").stat().st_size > 5000
    page = (out / "report" / "index.html").read_text()
    assert "Methods over seeds" in page and "speed-up vs adamw" in page


def test_run_figure_gets_a_diagnostics_panel_when_the_run_logged_them(tmp_path):
    from matplotlib.image import imread

    from groklab.figures.accuracy import accuracy_curves

    rows = [{"step": s, "t/acc": s / 10} for s in range(1, 10)]
    plain = accuracy_curves(rows, {"train": "t"}, tmp_path / "plain.png")
    for r in rows:
        r |= {"weights/norm": 30 - r["step"], "train/softmax_collapse": 0.1, "train/grad_weight_cos": -0.2}
    both = accuracy_curves(rows, {"train": "t"}, tmp_path / "both.png")
    assert imread(both).shape[0] > 1.3 * imread(plain).shape[0]  # the second panel below the accuracies


@pytest.mark.parametrize("name", ["accelerators-modular-cpu", "accelerators-composition-cpu"])
def test_accelerator_presets_run_every_switch_over_five_seeds_against_a_weight_decay_grid(name):
    spec = sweep_file.load(name)
    points = sweep_file.expand(spec)
    assert len(spec.grid["train.seed"]) >= 5 and spec.baseline == "adamw"
    adamw = next(m for m in spec.methods if m.name == "adamw")
    assert len(adamw.grid["train.weight_decay"]) >= 2  # the baseline is tuned, not one setting
    switches = {(p.config.train.optimizer, p.config.train.grad_transform, p.config.train.loss, p.config.filter.kind,
                 p.config.filter.normalize_lr) for p in points}
    for needed in (("muon", "none", "softmax", "none", False), ("adamw", "orthograd", "softmax", "none", False),
                   ("adamw", "egd", "softmax", "none", False), ("adamw", "none", "stablemax", "none", False),
                   ("adamw", "none", "softmax", "ema", True), ("adamw", "none", "softmax", "ma", False)):
        optimizer = needed[0] if needed[0] == "muon" else points[0].config.train.optimizer  # base's own Adam(W)
        assert (optimizer, *needed[1:]) in switches, needed
    assert all(p.config.train.stop_on_grok for p in points)


def test_modular_preset_gives_each_accelerator_its_paper_setting_and_two_neighbours():
    spec = sweep_file.load("accelerators-modular-cpu")
    paper = {"grokfast-ema": ("filter.amplify", 2.0), "grokfast-ma": ("filter.amplify", 5.0),
             "orthograd": ("train.lr", 1e-3), "stablemax": ("train.lr", 1e-3), "egd": ("train.lr", 1e-3),
             "muon": ("train.muon_lr", 0.02)}
    grids = {m.name: m.grid for m in spec.methods}
    for method, (key, value) in paper.items():
        values = sorted(grids[method][key])
        assert len(grids[method]) == 1 and len(values) == 3 and values[1] == value, (method, grids[method])
    # the baseline is tuned on the same lr grid as the lr-tuned methods, or they win by their lr alone
    lr_grids = [sorted(grids[m]["train.lr"]) for m in ("adamw", "orthograd", "egd")]
    assert lr_grids[0] == lr_grids[1] == lr_grids[2], lr_grids
    assert len(grids["adamw"]["train.weight_decay"]) >= 3


def test_guide_methods_example_is_valid(tmp_path):
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "guide.md").read_text()
    block = re.search(r"## Grokking accelerators, side by side.*?```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "example.toml").write_text(block)
    spec = sweep_file.load(str(tmp_path / "example.toml"))
    names = [p.name for p in sweep_file.expand(spec)]
    assert len(names) == (3 + 1) * 5 and names[0] == "method=adamw,weight_decay=0.1,seed=0"
