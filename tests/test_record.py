"""`groklab record`: a finished sweep's light records land in docs/runs-style folders (no checkpoints), a run
still training is left out and named, the records alone are enough for `groklab report`, and bad arguments
are one clear line."""

from __future__ import annotations

import json

from groklab import config, runs, train
from groklab.cli import main
from groklab.record import RUN_RECORDS
from tests.conftest import TINY


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

    code, out, err = run_cli(["record", src, dst], capsys)
    assert code == 0 and err == ""
    assert "recorded 2 finished runs" in out and "left out 1 unfinished: still-training" in out
    copied = runs.analysis_file(dst / "seed=0", "logit-lens", "test_inferred_id")
    assert copied.read_bytes() == analysis.read_bytes()
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
