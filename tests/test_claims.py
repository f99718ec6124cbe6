"""`groklab claims`: the claims table is computed from committed run summaries, never typed by hand.

The 95% intervals are groklab.stats' (tests/test_stats.py checks its t quantiles).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from groklab import claims
from groklab.cli import main

RESULTS = """# results

## Claims rebuilt from committed runs

<!-- claims:begin -->
old table
<!-- claims:end -->

## The demo groks (Wang et al. 2024)

text that must stay
"""

CLAIM = """
[[claim]]
claim = "The demo groks | ID"
section = "The demo groks (Wang et al. 2024)"
runs = ["demo-regime/*"]
measure = ["fit_step", "grok_step", "final.ood_atomic", "final_groups.test_inferred_ood/acc_eq"]
baseline = "no_information.test_inferred_ood"
verdict = "reproduced"
tuning_seeds = [0]
held_out_seeds = []
seeds_note = "synthetic runs, all at seed 0"
"""


def write_run(docs: Path, name: str, grok: int | None, ood: float, phi: float = 12.6) -> None:
    folder = docs / "runs" / name
    folder.mkdir(parents=True)
    summary = {
        "fit_step": 2000,
        "grok_step": grok,
        "final": {"ood_atomic": ood, "test_inferred_ood": 0.01},
        "final_groups": {"test_inferred_ood/acc_eq": 0.25},
        "no_information": {"test_inferred_ood": 0.01},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.json").write_text(json.dumps({"data": {"phi": phi}, "train": {"seed": 0}}))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    for seed, (grok, ood) in enumerate([(3000, 0.5), (3400, 0.6), (3500, 0.7)]):
        write_run(docs, f"demo-regime/seed={seed}", grok, ood)
    (docs / "claims.toml").write_text(CLAIM)
    (docs / "results.md").write_text(RESULTS)
    return docs


def rows(docs: Path) -> list[str]:
    text = (docs / "results.md").read_text()
    return [line for line in text.split(claims.BEGIN)[1].split(claims.END)[0].splitlines() if line.startswith("| [")]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_mean_and_t_interval_by_hand(docs, capsys):
    assert run_cli(["claims", "--docs", str(docs)], capsys)[0] == 0
    (row,) = rows(docs)
    # grok steps 3000, 3400, 3500: mean 3300, s = sqrt((300² + 100² + 200²) / 2) = 264.575,
    # half-width t(0.975, 2) · s / √3 = 4.3027 · 152.753 = 657.2
    assert "grok_step 3,300 ± 657" in row
    # ood_atomic 0.5, 0.6, 0.7: mean 0.6, s = 0.1, half-width 4.3027 · 0.1 / √3 = 0.2484
    assert "final.ood_atomic 0.600 ± 0.248" in row
    assert "fit_step 2,000 ± 0" in row  # identical values: a zero-width interval, not an error
    assert "final_groups.test_inferred_ood/acc_eq 0.250 ± 0.000" in row
    assert "baseline no_information.test_inferred_ood 0.010 ± 0.000" in row
    assert "The demo groks \\| ID](#the-demo-groks-wang-et-al-2024)" in row  # pipes escaped, linked to its section
    assert "3 in [`demo-regime/*`](runs/demo-regime/)" in row


def test_interval_matches_the_formula():
    stat = claims.Stat((3000, 3400, 3500), never=0)
    s = math.sqrt((300**2 + 100**2 + 200**2) / 2)
    assert stat.mean == 3300 and stat.half_width == pytest.approx(4.3027 * s / math.sqrt(3))


def test_never_is_counted_not_averaged(docs, capsys):
    write_run(docs, "demo-regime/seed=3", None, 0.6)
    run_cli(["claims", "--docs", str(docs)], capsys)
    (row,) = rows(docs)
    assert "grok_step 3,300 ± 657 (1 of 4 never)" in row
    never = claims.format_stat("grok_step", claims.Stat((), never=3))
    assert never == "grok_step never (3 of 3)"


def test_fewer_than_three_runs_show_values_without_interval():
    text = claims.format_stat("grok_step", claims.Stat((3000, 3400), never=1))
    assert text == "grok_step 3,000 / 3,400 (n < 3: no interval; 1 of 3 never)"


def test_a_small_group_says_no_interval_once(docs, capsys):
    (docs / "runs" / "demo-regime" / "seed=2").rename(docs / "runs" / "seed=2")  # two runs left
    run_cli(["claims", "--docs", str(docs)], capsys)
    (row,) = rows(docs)
    assert "| (n < 3: no interval) fit_step 2,000 / 2,000; grok_step 3,000 / 3,400; final.ood_atomic" in row
    assert row.count("no interval") == 1


def test_group_by_gives_one_value_per_group_in_numeric_order(docs, capsys):
    for seed, grok in enumerate([8000, 8200, 8400]):
        write_run(docs, f"demo-regime/phi9-seed={seed}", grok, 0.5, phi=9.0)
    text = (docs / "claims.toml").read_text().replace('verdict = "reproduced"', 'verdict = "x"\ngroup_by = "data.phi"')
    (docs / "claims.toml").write_text(text)
    assert run_cli(["claims", "--docs", str(docs)], capsys)[0] == 0
    (row,) = rows(docs)
    assert row.index("data.phi = 9 (n = 3): fit_step") < row.index("<br>data.phi = 12.6 (n = 3)")
    assert "grok_step 8,200 ± 497" in row  # s = 200, 4.3027 · 200 / √3 = 496.8
    assert "6 in" in row


def test_group_by_runs_gives_one_group_per_glob(docs, capsys):
    for seed, grok in enumerate([2000, 2200, 2400]):  # a second arm, e.g. a curriculum's scratch control
        write_run(docs, f"scratch/seed={seed}", grok, 0.5)
    text = (docs / "claims.toml").read_text().replace('"demo-regime/*"', '"demo-regime/*", "scratch/*"')
    (docs / "claims.toml").write_text(text.replace('verdict = "reproduced"', 'verdict = "x"\ngroup_by = "runs"'))
    assert run_cli(["claims", "--docs", str(docs)], capsys)[0] == 0
    (row,) = rows(docs)
    assert row.index("`demo-regime/*` (n = 3): fit_step") < row.index("<br>`scratch/*` (n = 3): fit_step")
    assert "grok_step 2,200 ± 497" in row.split("<br>")[1]
    assert "6 in" in row


def write_tree_analysis(docs: Path, seed: int, t_scores: list[float]) -> None:
    folder = docs / "runs" / "demo-regime" / f"seed={seed}" / "analysis"
    folder.mkdir()
    checkpoints = [{"step": 1000 * (i + 1), "t_score": t} for i, t in enumerate(t_scores)]
    analysis = {"method": "tree-projection", "checkpoints": checkpoints}
    (folder / "tree-projection-gen.json").write_text(json.dumps(analysis))


def test_a_measure_reads_another_json_file_of_the_run(docs, capsys):
    for seed, last in enumerate([0.1, 0.2, 0.3]):
        write_tree_analysis(docs, seed, [-0.5, last])
    last, first = (f'"analysis/tree-projection-gen.json:checkpoints.{i}.t_score"' for i in (-1, 0))
    measure = f"{last}, {first}"
    (docs / "claims.toml").write_text(CLAIM.replace('"fit_step", "grok_step"', measure))
    assert run_cli(["claims", "--docs", str(docs)], capsys)[0] == 0
    (row,) = rows(docs)
    # the last checkpoint's t_score 0.1, 0.2, 0.3: mean 0.2, s = 0.1, half-width 4.3027 · 0.1 / √3 = 0.248
    assert "analysis/tree-projection-gen.json:checkpoints.-1.t_score 0.200 ± 0.248" in row
    assert "analysis/tree-projection-gen.json:checkpoints.0.t_score -0.500 ± 0.000" in row
    assert "final.ood_atomic 0.600 ± 0.248" in row  # summary paths beside them still read summary.json


@pytest.mark.parametrize(
    ("measure", "needle"),
    [
        ("analysis/tree-projection-gen.json:checkpoints.2.t_score", "'2' is not an index of a list of 2"),
        ("analysis/tree-projection-gen.json:checkpoints.last.t_score", "'last' is not an index of a list of 2"),
        ("analysis/absent.json:x", "analysis/absent.json is missing: commit the run's analysis/absent.json"),
        ("../elsewhere.json:x", "must name a JSON file inside the run folder"),
        ("analysis/tree-projection-gen.json:", "must name a JSON file inside the run folder and a path in it"),
        ("analysis/tree-projection-gen.json:method", "method is 'tree-projection', not a number or null"),
    ],
)
def test_a_bad_file_measure_is_one_error_line(docs, capsys, measure, needle):
    for seed in range(3):
        write_tree_analysis(docs, seed, [-0.5, 0.1])
    (docs / "claims.toml").write_text(CLAIM.replace('"fit_step"', f'"{measure}"'))
    code, _, err = run_cli(["claims", "--docs", str(docs)], capsys)
    assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_only_the_marked_table_changes_and_check_passes(docs, capsys):
    code, out, _ = run_cli(["claims", "--docs", str(docs)], capsys)
    assert code == 0 and "1 claims, 0 pending" in out
    text = (docs / "results.md").read_text()
    assert "old table" not in text
    assert text.startswith("# results\n\n## Claims rebuilt") and text.endswith("text that must stay\n")
    assert run_cli(["claims", "--docs", str(docs), "--check"], capsys)[0] == 0


def test_check_fails_on_a_stale_table(docs, capsys):
    run_cli(["claims", "--docs", str(docs)], capsys)
    write_run(docs, "demo-regime/seed=3", 3900, 0.6)  # a new run: the table no longer says what the runs give
    before = (docs / "results.md").read_text()
    code, _, err = run_cli(["claims", "--docs", str(docs), "--check"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "groklab claims" in err
    assert (docs / "results.md").read_text() == before  # --check never writes


def test_pending_claim_renders_its_reason(docs, capsys):
    pending = CLAIM.replace("demo-regime/*", "not-yet/*") + 'pending = "runs not yet committed"\n'
    (docs / "claims.toml").write_text(pending)
    assert run_cli(["claims", "--docs", str(docs)], capsys)[0] == 0
    (row,) = rows(docs)
    assert "| pending: runs not yet committed | 0 in `not-yet/*` |" in row


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t + 'colour = "red"\n', "unknown key colour; valid keys in [[claim]]"),
        (lambda t: t.replace('verdict = "reproduced"\n', ""), "missing key verdict"),
        (lambda t: t.replace('runs = ["demo-regime/*"]', 'runs = "demo-regime/*"'), "runs must be a non-empty list"),
        (lambda t: t.replace("demo-regime/*", "../elsewhere/*"), "without '..'"),
        (lambda t: t.replace("demo-regime/*", "nowhere/*"), "claim 'The demo groks | ID': runs pattern 'nowhere/*'"),
        (lambda t: t.replace("[[claim]]", "[[claim]\n"), "not valid TOML"),
        (lambda t: t + "\n[extra]\nx = 1\n", "unknown key extra; valid keys at the top level"),
        (lambda t: t.replace("(Wang et al. 2024)", "(Wang et al. 2025)"), "is not a heading of results.md"),
        (lambda t: t.replace("final.ood_atomic", "final.nope"), "summary.json has no final.nope"),
        (lambda t: t.replace('baseline = "no_information.test_inferred_ood"', 'group_by = "data.nope"'),
         "config.json has no data.nope"),
    ],
)
def test_bad_claims_file_is_one_error_line(docs, capsys, edit, needle):
    (docs / "claims.toml").write_text(edit(CLAIM))
    before = (docs / "results.md").read_text()
    code, _, err = run_cli(["claims", "--docs", str(docs)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert (docs / "results.md").read_text() == before


def test_missing_markers_and_missing_files(docs, capsys, tmp_path):
    (docs / "results.md").write_text(RESULTS.replace(claims.END, ""))
    code, _, err = run_cli(["claims", "--docs", str(docs)], capsys)
    assert code == 2 and claims.END in err
    (docs / "runs" / "demo-regime" / "seed=0" / "config.json").unlink()
    (docs / "results.md").write_text(RESULTS)
    code, _, err = run_cli(["claims", "--docs", str(docs)], capsys)
    assert code == 2 and "config.json is missing: commit each run's summary.json and config.json" in err
    code, _, err = run_cli(["claims", "--docs", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "claims.toml is missing" in err


def test_the_repository_claims_table_is_current(capsys, monkeypatch):
    """What CI runs: `groklab claims --check` from the repository root (the default --docs docs)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    code, out, err = run_cli(["claims", "--check"], capsys)
    assert code == 0 and "up to date" in out, err
