"""The value probe (comparison): a ridge readout of an entity's value from the state at its position, scored on
held-out ID keys and on OOD keys; synthetic states where the answer is known, then `groklab analyze` on a run."""

from __future__ import annotations

import json

import numpy as np
import torch

from groklab import config, train
from groklab.analysis.value_probe import key_halves, probe_scores, r2
from groklab.cli import main


def test_probe_reads_a_linearly_stored_value_and_not_noise():
    """Values written along one direction (plus noise) are read back on held-out rows (R² near 1); for rows whose
    states hold no value the probe scores R² ≤ ~0, the no-information level."""
    g = torch.Generator().manual_seed(0)
    n, d = 600, 16
    values = torch.randint(0, 20, (n,), generator=g).double()
    direction = torch.randn(d, generator=g, dtype=torch.float64)
    states = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.05 + values[:, None] * direction / 10
    stored = torch.arange(n) < 400
    states[~stored] = torch.randn(int((~stored).sum()), d, generator=g, dtype=torch.float64)  # no value there
    fit = torch.arange(n) < 200
    held_out = stored & ~fit
    out = probe_scores(states, values, fit, {"id_heldout": held_out, "ood": ~stored})
    assert out["r2_id_heldout"] > 0.95 and out["exact_id_heldout"] > 0.5
    assert out["r2_ood"] < 0.05
    assert r2(torch.full((10,), 3.0, dtype=torch.float64), torch.arange(10.0, dtype=torch.float64)) < 0  # a constant


def test_key_halves_keep_every_row_of_a_key_on_one_side():
    attribute = np.array([0, 0, 1, 1, 0, 2, 2, 1, 0, 2] * 3)
    entity = np.array([5, 6, 5, 7, 5, 6, 8, 7, 6, 8] * 3)
    fit = key_halves(attribute, entity)
    by_key: dict = {}
    for a, e, f in zip(attribute, entity, fit, strict=True):
        by_key.setdefault((a, e), set()).add(bool(f))
    assert all(len(sides) == 1 for sides in by_key.values())  # no key on both sides
    assert sum(next(iter(s)) for s in by_key.values()) == len(by_key) // 2
    assert (key_halves(attribute, entity) == fit).all()  # fixed


def test_analyze_value_probe_on_a_comparison_run(tmp_path, capsys):
    cfg = config.load("comparison-small", ["data.n_entities=40", "data.n_attributes=3", "model.n_layers=2",
                                            "train.steps=40", "train.eval_points=4", "train.ckpt_points=3",
                                            "train.warmup_steps=5"])
    run_dir = tmp_path / "run"
    train.start(cfg, run_dir, progress=False).run()
    assert main(["analyze", str(run_dir), "--method", "value-probe", "--quiet"]) == 0
    out = json.loads((run_dir / "analysis" / "value-probe-test_inferred_ood.json").read_text())
    assert out["positions"] == {"e1": 2, "e2": 4, "atomic": 1}
    assert all(n["ood"] > 0 and n["fit"] > 0 and n["id_heldout"] > 0 for n in out["n_rows"].values())
    last = out["checkpoints"][-1]["probe"]
    assert set(last) == {"e1", "e2", "atomic"}
    assert all(len(last[p]["r2_ood"]) == 3 for p in last)  # the embedding and each of the 2 blocks
    assert (run_dir / "analysis" / "value-probe-test_inferred_ood-curves.png").stat().st_size > 1000
    # an ID split in the OOD role would mislabel the groups: refused, one line naming the fix
    assert main(["analyze", str(run_dir), "--method", "value-probe", "--split", "test_inferred_id", "--quiet"]) == 2
    assert "use --split test_inferred_ood" in capsys.readouterr().err


def test_value_probe_is_for_comparison_only(tiny_config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.start(tiny_config("train.steps=5"), run_dir, progress=False).run()
    assert main(["analyze", str(run_dir), "--method", "value-probe", "--quiet"]) == 2
    assert "comparison" in capsys.readouterr().err
