"""Tree projections: the chart finds the optimum, a tree-structured encoder is more tree-like than one that mixes
its whole context, parse F1 on hand-built trees, and batched span states equal a manual restricted run."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest
import torch
from torch import nn

from groklab.analysis import tree_projection as tp
from groklab.model import Transformer
from groklab.tasks.dataset import Split

D_MODEL = 16
N_TOKENS = 20
# ((0 1) ((2 3) (4 (5 6)))) ... over 8 tokens: a tree whose constituents a causal reader can tell apart
GOLD = [(0, 7), (0, 1), (2, 7), (2, 3), (4, 7), (4, 5), (6, 7)]
N = 8


def all_trees(i: int, j: int):
    """Every binary tree over i..j, as its list of internal spans."""
    if i == j:
        yield []
        return
    for k in range(i, j):
        for left, right in itertools.product(list(all_trees(i, k)), list(all_trees(k + 1, j))):
            yield [(i, j), *left, *right]


def split_probability(tree: list[tuple[int, int]]) -> float:
    """Probability of `tree` when every node splits at a uniformly random point."""
    return float(np.prod([1 / (j - i) for i, j in tree]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_chart_minimum_equals_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = rng.random((n, n))
        trees = list(all_trees(0, n - 1))
        brute = min(tp.sci(d, t) for t in trees)
        best, split = tp.chart_minimum(d)
        assert best == pytest.approx(brute)
        assert tp.sci(d, tp.tree_from_splits(split, n)) == pytest.approx(brute)
        # the exact expectation over uniformly random splits equals the enumeration weighted by probability
        expect = sum(split_probability(t) * tp.sci(d, t) for t in trees)
        assert tp.expected_random_sci(d) == pytest.approx(expect)
        assert sum(split_probability(t) for t in trees) == pytest.approx(1.0)
        # the greedy decoder never beats the exact minimum
        assert tp.sci(d, tp.project(d, "greedy")) >= best - 1e-12


def test_parse_f1_hand_built():
    n = 6
    tree = [(0, 5), (0, 1), (2, 5), (2, 3), (4, 5)]
    assert tp.parse_f1(tree, tree, n) == 1.0
    # left-branching vs right-branching over 4 tokens: non-trivial brackets {(0,1),(0,2)} vs {(1,3),(2,3)}
    assert tp.parse_f1(tp.branching_tree(4, "left"), tp.branching_tree(4, "right"), 4) == 0.0
    # predicted {(0,1),(2,5),(2,3),(4,5)} vs gold {(0,2),(0,1),(3,5),(4,5)}: 2 hits, F1 = 2*2/(4+4)
    gold = [(0, 5), (0, 2), (0, 1), (3, 5), (4, 5)]
    assert tp.parse_f1(tree, gold, n) == pytest.approx(0.5)
    # leaves and the whole sentence never count; -1 padding rows are dropped before
    assert tp.brackets([(0, 5), (3, 3), (1, 2)], n) == {(1, 2)}
    assert np.isnan(tp.parse_f1([(0, 1)], [(0, 1)], 2))  # nothing non-trivial to score


class ToyEncoder(nn.Module):
    """A stand-in for `Transformer` with the interface tree projections use. The state at absolute position p
    is the sum of the embeddings it may read: with `gold`, only tokens of p's smallest gold constituent up to
    p (exactly compositional over the tree); without, every token from the start up to p."""

    def __init__(self, gold: list[tuple[int, int]] | None, n: int) -> None:
        super().__init__()
        self.cfg = types.SimpleNamespace(depth=1)
        self.embed = nn.Embedding(N_TOKENS, D_MODEL)
        self.ln_final = nn.Identity()
        starts = np.zeros(n, dtype=np.int64)
        for p in range(n):  # left edge of the smallest internal gold span containing p
            inside = [(j - i, i) for i, j in gold or [] if i <= p <= j and i < j]
            starts[p] = min(inside)[1] if inside else 0
        self.register_buffer("starts", torch.as_tensor(starts))

    def residual(self, tokens, hooks=None, depth=None, pos_offset=None):
        batch, width = tokens.shape
        offset = torch.zeros(batch, dtype=torch.long) if pos_offset is None else pos_offset
        pos = torch.arange(width)[None] + offset[:, None]  # absolute positions [batch, width]
        first = (self.starts[pos.clamp(max=len(self.starts) - 1)] - offset[:, None]).clamp(min=0)  # local
        local = torch.arange(width)
        reads = (local[None, None, :] >= first[..., None]) & (local[None, None, :] <= local[None, :, None])
        return reads.float() @ self.embed(tokens)  # [batch, width, d_model]


def toy_split(n_rows: int, n: int = N) -> Split:
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, N_TOKENS, size=(n_rows, n + 2))  # two tokens after the sentence: never read
    tree = np.full((n_rows, len(GOLD) + 2, 2), -1, dtype=np.int64)
    tree[:, : len(GOLD)] = GOLD
    return Split(
        tokens=tokens,
        lengths=np.full(n_rows, n + 2),
        answers=np.zeros(n_rows, dtype=np.int64),
        fields={"sentence_length": np.full(n_rows, n), "tree": tree},
    )


def test_tree_structured_encoder_is_more_tree_like_and_recovers_its_tree():
    torch.manual_seed(0)
    split, cpu = toy_split(12), torch.device("cpu")
    tree_like = tp.tree_projection(ToyEncoder(GOLD, N), split, cpu, examples=12, seed=0)
    mixer = tp.tree_projection(ToyEncoder(None, N), split, cpu, examples=12, seed=0)
    assert tree_like["parse_f1"] == 1.0
    assert tree_like["trees"][0]["projected"] == [list(s) for s in GOLD]
    assert tree_like["t_score"] > max(mixer["t_score"], 0.0) + 0.1
    # the authors' per-node score rewards any spread in d: the left-context accumulator scores higher on it
    assert mixer["t_score_nodes"] > tree_like["t_score_nodes"] > 0
    assert mixer["parse_f1"] < 1.0
    assert tree_like["f1_left"] < 1.0 and tree_like["n"] == 12


def test_exact_chart_is_left_branching_for_a_causal_model():
    """Why greedy is the default: under a causal mask every span (0, j) sees no context, so d_0j = 0 and the
    left-branching tree reaches the exact minimum whatever the model computes."""
    torch.manual_seed(0)
    split = toy_split(4)
    model = ToyEncoder(None, N)
    d = tp.sci_chart(model, torch.as_tensor(split.tokens), torch.full((4,), N), layer=1)[0]
    assert np.allclose(d[0, :], 0, atol=1e-6)
    left = tp.branching_tree(N, "left")
    assert tp.chart_minimum(d)[0] == pytest.approx(tp.sci(d, left))


def test_restricted_states_equal_a_manual_run_of_the_span(tiny_config):
    cfg = tiny_config("model.n_layers=2")
    torch.manual_seed(0)
    model = Transformer(cfg.model, d_vocab=N_TOKENS, n_ctx=12).eval()
    rng = np.random.default_rng(1)
    tokens = torch.as_tensor(rng.integers(1, N_TOKENS, size=(3, 12)))
    lengths = torch.tensor([12, 7, 9])

    def states(layer: int) -> dict:
        """(sentence, start, end) -> (contextual, restricted) mean states."""
        out = {}
        for rows, starts, ends, ctx, res in tp.span_states(model, tokens, lengths, layer):
            for k, key in enumerate(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True)):
                out[key] = ctx[k], res[k]
        return out

    last, early = states(2), states(1)
    assert len(last) == sum(n * (n + 1) // 2 for n in lengths.tolist())  # every span, none past a sentence's end
    with torch.no_grad():
        full = model.ln_final(model.residual(tokens))
        for b, i, j in [(0, 0, 11), (0, 3, 8), (1, 2, 6), (2, 5, 5), (2, 1, 4)]:
            run = model.ln_final(model.residual(tokens[b : b + 1, i : j + 1], pos_offset=torch.tensor([i])))
            torch.testing.assert_close(last[b, i, j][1], run[0].double().mean(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(last[b, i, j][0], full[b, i : j + 1].double().mean(0), atol=1e-5, rtol=1e-5)
        # a span starting at 0 is its own full context under the causal mask
        torch.testing.assert_close(last[0, 0, 5][1], last[0, 0, 5][0], atol=1e-5, rtol=1e-5)
        # an intermediate layer reads the residual after that many blocks
        run = model.ln_final(model.residual(tokens[:1, 3:9], depth=1, pos_offset=torch.tensor([3])))
        torch.testing.assert_close(early[0, 3, 8][1], run[0].double().mean(0), atol=1e-5, rtol=1e-5)


def test_analyze_tree_projection_over_hand_built_checkpoints(tiny_config, tmp_path, monkeypatch):
    """`groklab analyze RUN --method tree-projection` on a hand-built run (a "gen" split with trees)."""
    import json

    from groklab import checkpoint, runs
    from groklab.cli import main
    from groklab.tasks.dataset import TaskData, Vocab

    cfg = tiny_config()
    split = toy_split(6)
    vocab = Vocab(("<pad>", *(f"w{i}" for i in range(1, N_TOKENS))))
    data = TaskData("toy", vocab, split, {"gen": split, "test": split}, {"train": "test", "test_id": "test"})
    monkeypatch.setattr(runs, "open_run", lambda run_dir: (cfg, data))
    run_dir = tmp_path / "run"
    torch.manual_seed(0)
    for step in (10, 100):
        checkpoint.save(run_dir, step, Transformer(cfg.model, len(vocab), data.n_ctx), {})
    runs.write_json(run_dir / "config.json", {})
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "test/acc": a, "gen/acc": a / 2}) + "\n" for s, a in ((10, 0.2), (100, 0.9)))
    )
    assert main(["analyze", str(run_dir), "--method", "tree-projection", "--examples", "4", "--quiet"]) == 0
    out = json.loads((run_dir / "analysis" / "tree-projection-gen.json").read_text())
    assert [c["step"] for c in out["checkpoints"]] == [10, 100] and out["examples"] == 4
    assert all(0 <= c["parse_f1"] <= 1 and np.isfinite(c["t_score"]) for c in out["checkpoints"])
    assert out["checkpoints"][0]["trees"][0]["gold"] == [list(s) for s in sorted(GOLD[1:])]
    assert (run_dir / "analysis" / "tree-projection-gen-curves.png").stat().st_size > 1000


def test_node_gain_is_the_authors_per_node_score():
    # 3 tokens: root (0, 2) splits at k=0 → children (0,0),(1,2) cost d00+d12; at k=1 → d01+d22
    d = np.array([[0.1, 0.5, 0.0], [0.0, 0.2, 0.3], [0.0, 0.0, 0.4]])
    # tree ((0) (1 2)): root gain = mean(0.1+0.3, 0.5+0.4) − (0.1+0.3) = 0.65 − 0.4; node (1, 2) has one split: 0
    assert tp.node_gain(d, [(0, 2), (1, 2)]) == pytest.approx(0.25)
    assert tp.node_gain(d, [(0, 2), (0, 1)]) == pytest.approx(0.65 - 0.9)  # the worse split: negative
    rng = np.random.default_rng(0)
    for _ in range(20):  # the greedy decoder takes the best split at every node: never below random
        chart = np.triu(rng.random((6, 6)))
        assert tp.node_gain(chart, tp.project(chart, "greedy")) >= 0
