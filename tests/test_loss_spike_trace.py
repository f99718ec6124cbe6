"""benchmarks/loss_spike_trace.py replays a run's own updates: their mean loss between two evaluations is the
train/loss the run logged there, and a bad checkpoint step is one error line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from groklab import api, config, runs
from tests.conftest import TINY

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # benchmarks/ holds scripts, not a package
import loss_spike_trace  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("spike") / "run"
    api.train(config.load("demo", TINY), out=out, progress=False)
    return out


def test_replay_repeats_the_logged_loss(tiny_run, tmp_path):
    steps = runs.list_steps(tiny_run)
    start = next(s for s in steps if s > 0)
    rows = {r["step"]: r for r in runs.read_metrics(tiny_run)}
    stop = min(s for s in rows if s > start)
    out = tmp_path / "trace.json"
    assert loss_spike_trace.main([str(tiny_run), "--from", str(start), "--to", str(stop), "--out", str(out)]) == 0
    trace = json.loads(out.read_text())["updates"]
    assert [r["step"] for r in trace] == list(range(start + 1, stop + 1))
    mean = sum(r["loss"] for r in trace) / len(trace)
    assert mean == pytest.approx(rows[stop]["train/loss"], rel=1e-9)
    assert max(r["grad_norm"] for r in trace) == pytest.approx(rows[stop]["train/grad_norm_max"], rel=1e-6)


def test_first_jump_finds_the_spike():
    trace = [{"step": i, "loss": 1e-5, "grad_norm": 0.01} for i in range(30)] + [{"step": 30, "loss": 5.0}]
    assert loss_spike_trace.first_jump(trace)["step"] == 30
    assert loss_spike_trace.first_jump(trace[:30]) is None


def test_a_step_without_checkpoint_is_one_error_line(tiny_run, tmp_path, capsys):
    code = loss_spike_trace.main([str(tiny_run), "--from", "7", "--out", str(tmp_path / "t.json")])
    assert code == 2 and "has no checkpoint at step 7; it has:" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
