"""Science check: the demo config really groks on a CPU (test_inferred_id ≥ 95%) while OOD stays low."""

from __future__ import annotations

import json

import pytest

from groklab.cli import main


@pytest.mark.slow
def test_demo_groks(tmp_path, capsys):
    run_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "grok step" in out and (run_dir / "accuracy.png").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["grok_step"] is not None, summary
    assert summary["final"]["test_inferred_id"] >= 0.95
    assert summary["final"]["test_inferred_ood"] <= 0.15  # composition: OOD does not generalize
    # grokking, not mere fitting: test reaches 95% after train does
    assert summary["grok_step"] >= summary["train_reaches_grok_level_step"]
