"""`groklab record`: a finished sweep's light records land in docs/runs-style folders (no checkpoints, no
figures), a run still training is left out and named, `--figures` redraws each run's figures from the records
alone, the records alone are enough for `groklab report`, bad arguments are one clear line, and no PNG is
committed under docs/runs that no doc shows."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from groklab import config, runs, train
from groklab.cli import main
from groklab.record import RUN_RECORDS
from tests.conftest import TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_record_copies_finished_runs_only(tmp_path, capsys):
    sweep_toml = tmp_path / "s.toml"
    fixed = "\n".join(f'"{k}" = {v}' for k, _, v in (item.partition("=") for item in TINY))
    sweep_toml.write_text(f'base = "demo"\n[fixed]\n{fixed}\n[grid]\ntrain.seed = [0, 1]\n')
    src, dst = tmp_path / "scratch" / "s", tmp_path / "docs" / "runs" / "s"
    assert run_cli(["sweep", sweep_toml, "--out", src], capsys)[0] == 0
    # a run that has started (config and meta written) but not finished: no summary.json
    train.start(config.load("demo", TINY), src / "still-training", progress=False)

    # an analysis of seed=0 (what `groklab analyze` writes) travels with its run's records
    analysis = runs.analysis_file(src / "seed=0", "logit-lens", "test_inferred_id")
    analysis.parent.mkdir()
    analysis.write_text('{"checkpoints": []}\n')

    analysis.with_suffix(".png").write_bytes(PNG_MAGIC)  # its figure: a view, not a record
    code, out, err = run_cli(["record", src, dst], capsys)
    assert code == 0 and err == ""
    assert "recorded 2 finished runs" in out and "left out 1 unfinished: still-training" in out
    copied = runs.analysis_file(dst / "seed=0", "logit-lens", "test_inferred_id")
    assert copied.read_bytes() == analysis.read_bytes()
    assert (src / "seed=0" / runs.ACCURACY_FIGURE).is_file() and not list(dst.rglob("*.png"))  # figures stay behind
    for name in ("seed=0", "seed=1"):
        extra = [runs.ANALYSIS_DIR] if name == "seed=0" else []
        assert sorted(p.name for p in (dst / name).iterdir()) == sorted([*RUN_RECORDS, *extra])
        for record in RUN_RECORDS:
            assert (dst / name / record).read_bytes() == (src / name / record).read_bytes()
    assert not (dst / "still-training").exists()
    assert not list(dst.rglob("*.safetensors")) and not list(dst.rglob(runs.CKPT_DIR))
    assert json.loads((dst / "sweep.json").read_text()) == json.loads((src / "sweep.json").read_text())
    assert not list(dst.rglob("*.tmp*"))  # every file was renamed into place

    # the records alone draw the sweep's report (what docs/runs/NAME/report is made from)
    code, out, _ = run_cli(["report", dst], capsys)
    assert code == 0 and (dst / "report" / "index.html").exists()

    # again: idempotent, and a record that changed upstream is replaced
    final = json.loads((src / "seed=0" / "summary.json").read_text()) | {"grok_step": 1}
    (src / "seed=0" / "summary.json").write_text(json.dumps(final))
    assert run_cli(["record", src, dst], capsys)[0] == 0
    assert (dst / "seed=0" / "summary.json").read_text() == json.dumps(final)
    # a summary that is not final (a resumed run training on, runs.is_finished) leaves the run out again
    (src / "seed=1" / "summary.json").write_text('{"grok_step": 1}\n')
    code, out, _ = run_cli(["record", src, dst], capsys)
    assert code == 0 and "left out 2 unfinished: seed=1, still-training" in out
    assert (dst / "seed=1" / "summary.json").read_text() != '{"grok_step": 1}\n'


def test_bad_record_arguments_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(["record", tmp_path / "nowhere", tmp_path / "out"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not a folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["record", tmp_path / "empty", tmp_path / "out"], capsys)
    assert code == 2 and "has no finished run" in err and not (tmp_path / "out").exists()
    code, _, err = run_cli(["record", tmp_path / "empty", tmp_path / "empty" / "docs"], capsys)
    assert code == 2 and "inside" in err


def test_record_figures_redraws_each_runs_figures_from_its_records(tmp_path, capsys):
    sweep_toml = tmp_path / "s.toml"
    fixed = "\n".join(f'"{k}" = {v}' for k, _, v in (item.partition("=") for item in TINY))
    sweep_toml.write_text(f'base = "demo"\n[fixed]\n{fixed}\n[grid]\ntrain.seed = [0]\n')
    src, dst = tmp_path / "scratch" / "s", tmp_path / "docs" / "s"
    assert run_cli(["sweep", sweep_toml, "--out", src], capsys)[0] == 0
    analysis = runs.analysis_file(src / "seed=0", "logit-lens", "test_inferred_id")
    analysis.parent.mkdir()
    states = [0.1, 0.2, 0.9]  # MRR after 0, 1 and 2 layers (the tiny model is 2 deep)
    checkpoints = [{"step": s, "targets": {"bridge": {"mrr": states}}} for s in (1, 60)]
    runs.write_json(analysis, {"method": "logit-lens", "split": "test_inferred_id", "examples": 8,
                               "task": "composition", "n_layers": 2, "depth": 2, "checkpoints": checkpoints})

    code, out, err = run_cli(["record", src, dst, "--figures"], capsys)
    assert code == 0 and err == "" and "drew 2 figures" in out
    accuracy = dst / "seed=0" / runs.ACCURACY_FIGURE
    # drawn from the copied metrics.jsonl and summary.json alone: the very figure the sweep drew while training
    assert accuracy.read_bytes() == (src / "seed=0" / runs.ACCURACY_FIGURE).read_bytes()
    lens = runs.analysis_file(dst / "seed=0", "logit-lens", "test_inferred_id", ".png")
    assert lens.read_bytes().startswith(PNG_MAGIC) and lens.stat().st_size > 5000


def committed_pngs(folder: str) -> list[str]:
    """PNGs git tracks under `folder` (the repository's files, not what a local `groklab report` drew)."""
    try:
        out = subprocess.run(["git", "ls-files", f"{folder}/*.png"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing committed to check")
    return out.split()


def shown_by_docs() -> set[str]:
    """Paths `runs/...png` (relative to docs/) that the README, docs/*.md, the records' READMEs or the lessons
    name: the figures a reader sees."""
    docs = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "docs" / "runs").rglob("README.md"),
            *(REPO / "tutorials").glob("*.ipynb")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in docs)
    return set(re.findall(r"(?<![\w./=-])(?:docs/)?(runs/[^\s)\"'`<>]+?\.png)", text))


def test_docs_runs_commits_only_the_figures_a_doc_shows():
    """Records are data, figures are views (a clone stays mostly code): a PNG under docs/runs is committed only
    when a doc shows it, and every PNG a doc shows is there."""
    shown = shown_by_docs()
    unshown = [p for p in committed_pngs("docs/runs") if p.removeprefix("docs/") not in shown]
    assert not unshown, (f"{len(unshown)} PNGs under docs/runs that no doc shows, e.g. {unshown[0]}: `git rm` them "
                         "(groklab report / groklab record --figures redraws them) or show them in a doc")
    missing = sorted(p for p in shown if not (REPO / "docs" / p).is_file())
    assert not missing, f"docs show figures that are not there: {missing}"
