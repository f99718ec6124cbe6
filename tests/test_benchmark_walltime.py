"""benchmarks/grokfast_walltime.py: the restated authors' loop builds their data and model, and the --smoke path
times both loops in ABBA order and writes their rows to JSON. The full benchmark is never run here (minutes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # benchmarks/ holds scripts, not a package
import grokfast_walltime as bench  # noqa: E402

P = 97


@pytest.fixture(autouse=True)
def keep_threads():
    """The benchmark sets torch's thread count for the whole process; give the next test its own back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_authors_data_is_every_product_mod_p():
    data = bench.multiplication_mod_p_data(P, P, P + 1)
    assert data.shape == (5, P * (P - 1))  # 97 · 96 = 9,312 equations
    x, op, y, eq, result = data
    assert set(x.tolist()) == set(range(P)) and set(y.tolist()) == set(range(1, P))
    assert len(set(zip(x.tolist(), y.tolist(), strict=True))) == P * (P - 1)  # each (x, y) once
    assert (op == P + 1).all() and (eq == P).all()
    assert torch.equal(result, x * y % P)
    row = data[:, (x == 5) & (y == 20)].flatten().tolist()
    assert row == [5, P + 1, 20, P, 3]  # 100 mod 97, by hand


def test_authors_decoder_is_sequence_first_and_causal():
    torch.manual_seed(0)
    model = bench.Decoder(dim=128, num_layers=2, num_heads=4, num_tokens=P + 2, seq_len=5).eval()
    tokens = bench.multiplication_mod_p_data(P, P, P + 1)[:-1, :7]  # (seq 4, batch 7): x, op, y, eq
    with torch.no_grad():
        logits = model(tokens)
        changed = tokens.clone()
        changed[-1] = 0
        later_changed = model(changed)
    assert logits.shape == (4, 7, P + 2)
    assert torch.allclose(logits[:-1], later_changed[:-1], atol=1e-6)  # earlier positions never see the last token
    assert not torch.allclose(logits[-1], later_changed[-1])


def test_smoke_times_both_loops_in_abba_order_and_writes_json(tmp_path, capsys):
    out = tmp_path / "sub" / "walltime.json"
    result = bench.main(["--smoke", "--seeds", "0", "--json", str(out), "--record", str(tmp_path / "rec")])
    written = json.loads(out.read_text())
    # the per-seed record the claims table reads: the seed's row and the settings it was measured with
    assert json.loads((tmp_path / "rec" / "seed=0" / "summary.json").read_text()) == written["rows"][0]
    recorded = json.loads((tmp_path / "rec" / "seed=0" / "config.json").read_text())
    assert recorded["seed"] == 0 and recorded["smoke"] and recorded["machine"] == written["machine"]
    assert json.loads((tmp_path / "rec" / "benchmark.json").read_text()) == written
    assert written["summary"] == pytest.approx(result["summary"])
    assert [r["loop"] for r in written["runs"]] == ["authors", "ours", "ours", "authors"]
    for r in written["runs"]:
        assert r["seed"] == 0 and r["steps"] == bench.SMOKE_STEPS and r["wall_s"] > 0 and not r["reached"]
    (row,) = written["rows"]
    assert row["authors_steps_all"] == row["ours_steps_all"] == [bench.SMOKE_STEPS] * 2
    assert row["authors_wall_s"] > 0 and row["ours_wall_s"] > 0
    assert row["ratio"] == pytest.approx(row["authors_wall_s"] / row["ours_wall_s"])
    assert written["settings"]["smoke"] and written["settings"]["threads"] == 1
    assert "| 0 | 30 |" in capsys.readouterr().out  # the table row


def test_ratio_bounds_mark_capped_runs():
    assert bench.bound(True, True) == "="
    assert bench.bound(False, True) == ">="  # the authors' wall is only a lower bound
    assert bench.bound(True, False) == "<="
    # the claim's own walls (docs/results.md, seeds 0-2): the per-seed mean ×1.77 and its interval ×1.27–×2.27
    walls = ((89, 55), (118, 59), (73, 43))
    rows = [{"ratio": a / o, "authors_wall_s": a, "ours_wall_s": o, "ratio_bound": "="} for a, o in walls]
    s = bench.summarize(rows)
    assert (round(s["min"], 2), round(s["median"], 2), round(s["max"], 2)) == (1.62, 1.70, 2.00)
    assert round(s["mean"], 2) == 1.77 and [round(v, 2) for v in s["ci95"]] == [1.27, 2.27]
    assert s["pooled"] == pytest.approx(280 / 157) and s["all_measured"]
    assert bench.summarize(rows[:1])["ci95"] is None  # one seed: no interval
