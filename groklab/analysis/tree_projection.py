"""Tree projections (Murty, Sharma, Andreas & Manning, ICLR 2023, arXiv 2211.01288), as used to track structural
grokking (Murty et al. 2023, arXiv 2305.18741): how tree-like is the model's computation over a sentence?

Definitions (paper §3-§4; the authors' code for the causal-LM details):
- span contextual invariance: for a span (i, j) (inclusive), v_ij is the mean of the span's states computed in
  the full sentence and ṽ_ij the mean computed with attention restricted to the span (§3.1, "average-pooled";
  the authors' code sums, which is the same under the cosine). d_ij = 1 - cos(v_ij, ṽ_ij) (§3, cosine
  distance). In our causal decoder, restricting attention to the span is running tokens[i..j] alone with
  their own position ids (`pos_offset=i`). The whole masking applies at every layer (the authors'
  `st_threshold=0` for LMs).
- SCI(S, T) = Σ_{(i, j) ∈ T} d_ij over every node of a binary tree T (Eq. 1).
- T_proj = argmin_T SCI(S, T) (Eq. 4), decoded from the chart of d_ij. Two decoders: "chart" is the exact
  O(n³) CKY minimum; "greedy" is the paper's top-down Algorithm 1 (split each node where its two children
  are most invariant), which the authors' code uses. For a *causal* model the exact minimum is degenerate:
  every span (0, j) sees no context, so d_0j = 0 and the left-branching tree always reaches the minimum —
  so "greedy" is the default (see `test_exact_chart_is_left_branching_for_a_causal_model`).
- t_score = E_T[SCI(S, T)] − SCI(S, T_proj) (the ICLR paper's Eq. 5), averaged over sentences, unnormalised by
  length. E_T is over random binary trees that split every node at a uniformly random point (the authors'
  sampler), computed exactly by a DP. For a causal model it can be negative: the greedy tree's deep nodes can
  be worse than random ones.
- t_score_nodes, as the authors' structural-grokking code scores LMs (`tree_projection(..., normalize=True)`):
  Σ over the projected tree's nodes of how much more invariant the chosen split is than a uniformly random
  split of that node, E_k(d_ik + d_k+1,j) − (d_ik* + d_k*+1,j) (exact mean over k where their code draws one
  k). Never negative with the greedy decoder, but it grows with the spread of d, so a causal model that just
  accumulates its left context scores high too (see the tests): reported beside t_score, not instead.
- parse F1: unlabeled bracketing F1 of T_proj against the gold tree per sentence, then averaged (sentence-level
  F1, as in unsupervised parsing); the whole-sentence span and single tokens are excluded (always right).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.methods import Measure
from groklab.errors import UserError
from groklab.tasks.dataset import ABSENT, Split, TaskData

Span = tuple[int, int]  # (start, end), both inclusive
SPAN_BATCH = 4096  # spans per forward pass: bounds memory on long sentences
SHOWN_TREES = 5  # example trees written into the JSON
EPS = 1e-8  # keeps the cosine finite on an all-zero state
# Splits whose costs differ by less than float noise tie, and the leftmost wins: a causal model only marks a
# constituent's left edge, so a span cut short on the right is as invariant as the constituent itself.
TIE_TOL = 1e-6
DECODERS = ("greedy", "chart")


@torch.no_grad()
def span_states(model, tokens: Tensor, lengths: Tensor, layer: int) -> Iterator[tuple[Tensor, ...]]:
    """Mean state of every span, in context and restricted to itself, one span width at a time (a dense
    forward per width, chunked by SPAN_BATCH). tokens [batch, pos], lengths [batch]. Yields (rows, starts,
    ends) [spans] and (contextual, restricted) [spans, d_model] float64 for every span inside a sentence."""
    n_max = int(lengths.max())
    full = model.ln_final(model.residual(tokens[:, :n_max], depth=layer)).double()  # [batch, n_max, d_model]
    prefix = torch.cat([torch.zeros_like(full[:, :1]), full.cumsum(1)], 1)  # [batch, n_max + 1, d_model]
    for width in range(1, n_max + 1):
        rows, starts = torch.nonzero(
            torch.arange(n_max, device=tokens.device)[None] + width <= lengths[:, None], as_tuple=True
        )  # every (sentence, start) with a span of this width
        for chunk in torch.arange(len(rows), device=tokens.device).split(SPAN_BATCH):
            r, s = rows[chunk], starts[chunk]
            cut = tokens[r[:, None], s[:, None] + torch.arange(width, device=tokens.device)]  # [spans, width]
            states = model.ln_final(model.residual(cut, depth=layer, pos_offset=s))  # [spans, width, d_model]
            contextual = (prefix[r, s + width] - prefix[r, s]) / width  # [spans, d_model]
            yield r, s, s + width - 1, contextual, states.double().mean(1)


def sci_chart(model, tokens: Tensor, lengths: Tensor, layer: int) -> np.ndarray:
    """d_ij = cosine distance between each span's contextual and restricted mean state: [batch, n_max, n_max]
    float64, NaN outside each sentence's spans."""
    n_max = int(lengths.max())
    chart = torch.full((len(tokens), n_max, n_max), float("nan"), dtype=torch.float64, device=tokens.device)
    for rows, starts, ends, contextual, restricted in span_states(model, tokens, lengths, layer):
        cos = (contextual * restricted).sum(-1) / (contextual.norm(dim=-1) * restricted.norm(dim=-1) + EPS)
        chart[rows, starts, ends] = 1 - cos
    return chart.cpu().numpy()


def _children_cost(table: np.ndarray, i: int, j: int) -> np.ndarray:
    """table[i, k] + table[k + 1, j] for every split k in i..j-1."""
    return table[i, i:j] + table[i + 1 : j + 1, j]


def chart_minimum(d: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact min over binary trees of Σ_nodes d by CKY, O(n³). d [n, n] (upper triangle used). Returns the
    minimum and the best split of every span (split[i, j] = k: children (i, k) and (k + 1, j))."""
    n = len(d)
    best = np.full((n, n), np.inf)
    split = np.zeros((n, n), dtype=np.int64)
    best[np.arange(n), np.arange(n)] = d[np.arange(n), np.arange(n)]
    for width in range(2, n + 1):
        for i in range(n - width + 1):
            j = i + width - 1
            cost = _children_cost(best, i, j)
            split[i, j] = i + int(cost.argmin())
            best[i, j] = d[i, j] + cost.min()
    return float(best[0, n - 1]), split


def greedy_splits(d: np.ndarray) -> np.ndarray:
    """The paper's top-down Algorithm 1: split each node where d(left) + d(right) is smallest."""
    n = len(d)
    split = np.zeros((n, n), dtype=np.int64)
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if i < j:
            cost = _children_cost(d, i, j)
            k = i + int(np.flatnonzero(cost <= cost.min() + TIE_TOL)[0])
            split[i, j] = k
            stack += [(i, k), (k + 1, j)]
    return split


def tree_from_splits(split: np.ndarray, n: int) -> list[Span]:
    """Internal nodes (spans of >= 2 tokens) of the tree that `split` encodes, in pre-order."""
    out, stack = [], [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if i < j:
            out.append((i, j))
            k = int(split[i, j])
            stack += [(k + 1, j), (i, k)]
    return out


def sci(d: np.ndarray, tree: list[Span]) -> float:
    """SCI(S, T) (Eq. 1) over every node: the internal spans given plus the n single tokens."""
    n = len(d)
    return float(sum(d[i, j] for i, j in tree) + np.trace(d[:n, :n]))


def expected_random_sci(d: np.ndarray) -> float:
    """E_T[SCI(S, T)] for trees that split each node at a uniformly random point: exact DP, O(n³)."""
    n = len(d)
    expect = np.zeros((n, n))
    expect[np.arange(n), np.arange(n)] = d[np.arange(n), np.arange(n)]
    for width in range(2, n + 1):
        for i in range(n - width + 1):
            j = i + width - 1
            expect[i, j] = d[i, j] + _children_cost(expect, i, j).mean()
    return float(expect[0, n - 1])


def node_gain(d: np.ndarray, tree: list[Span]) -> float:
    """Σ over the internal nodes (i, j) of a binary tree of the mean over splits k of d_ik + d_k+1,j minus that
    of the tree's own split (the authors' per-node normalised score)."""
    spans = set(tree)
    total = 0.0
    for i, j in tree:
        cost = _children_cost(d, i, j)
        k = next(k for k in range(i, j) if (k == i or (i, k) in spans) and (k + 1 == j or (k + 1, j) in spans))
        total += float(cost.mean() - cost[k - i])
    return total


def project(d: np.ndarray, decoder: str = "greedy") -> list[Span]:
    """T_proj of one sentence's chart d [n, n]."""
    if decoder not in DECODERS:
        raise UserError(f"tree-projection decoder {decoder!r} is unknown; choose one of {', '.join(DECODERS)}")
    split = chart_minimum(d)[1] if decoder == "chart" else greedy_splits(d)
    return tree_from_splits(split, len(d))


def brackets(spans, n: int) -> set[Span]:
    """The non-trivial brackets of a tree: spans of >= 2 tokens other than the whole sentence."""
    return {(int(i), int(j)) for i, j in spans if 0 <= i < j <= n - 1 and (i, j) != (0, n - 1)}


def parse_f1(predicted, gold, n: int) -> float:
    """Unlabeled bracketing F1 of one sentence; NaN when neither tree has a non-trivial bracket."""
    p, g = brackets(predicted, n), brackets(gold, n)
    if not p and not g:
        return float("nan")
    hits = len(p & g)
    return 0.0 if hits == 0 else 2 * hits / (len(p) + len(g))


def branching_tree(n: int, side: str) -> list[Span]:
    """The left- or right-branching tree: baselines for parse F1 (a causal model favours the left one)."""
    return [(0, j) for j in range(n - 1, 0, -1)] if side == "left" else [(i, n - 1) for i in range(n - 1)]


def _gold_tree(split: Split, row: int) -> list[Span] | None:
    """Row `row`'s gold spans (fields["tree"] [N, M, 2], padded with ABSENT rows), or None without gold trees."""
    if "tree" not in split.fields:
        return None
    return [(int(i), int(j)) for i, j in split.fields["tree"][row] if i != ABSENT]


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def score_sentence(d: np.ndarray, gold: list[Span] | None, decoder: str) -> dict:
    """Projected tree, SCI, expected random SCI, t_score and (with a gold tree) parse F1 and its baselines."""
    n = len(d)
    tree = project(d, decoder)
    out = {"length": n, "projected": [list(s) for s in tree], "sci": sci(d, tree), "sci_random": expected_random_sci(d)}
    out["t_score"] = out["sci_random"] - out["sci"]
    out["t_score_nodes"] = node_gain(d, tree)
    if gold is not None:
        out["gold"] = [list(s) for s in sorted(brackets(gold, n))]
        out["parse_f1"] = parse_f1(tree, gold, n)
        out.update({f"f1_{side}": parse_f1(branching_tree(n, side), gold, n) for side in ("left", "right")})
    return out


@torch.no_grad()
def tree_projection(
    model,
    split: Split,
    device: torch.device,
    examples: int,
    seed: int,
    layer: int | None = None,
    decoder: str = "greedy",
) -> dict:
    """t_score and parse F1 on `examples` rows of `split` (a seeded random subset), with states read after
    `layer` blocks (default: all) through ln_final. Rows hold the sentence at positions 0..sentence_length-1."""
    if "sentence_length" not in split.fields:
        raise UserError("tree projections need a split with a `sentence_length` field (structural tasks)")
    layer = model.cfg.depth if layer is None else layer
    if not 0 <= layer <= model.cfg.depth:
        raise UserError(f"layer {layer} is out of range 0..{model.cfg.depth}")
    model.eval()
    pick = np.sort(np.random.default_rng(seed).permutation(len(split))[: min(examples, len(split))])
    lengths = np.asarray(split.fields["sentence_length"])[pick]
    tokens = torch.as_tensor(split.tokens[pick], device=device)
    charts = sci_chart(model, tokens, torch.as_tensor(lengths, device=device), layer)  # [rows, n_max, n_max]
    rows = [
        {"row": int(row), **score_sentence(charts[b, :n, :n], _gold_tree(split, row), decoder)}
        for b, (row, n) in enumerate(zip(pick.tolist(), lengths.tolist(), strict=True))
    ]
    return summarise(rows, layer, decoder)


def prepare(data: TaskData, rows: Split) -> Measure:
    """Tree projections of every one of `rows` at each checkpoint (sentences with a known length only)."""
    if "sentence_length" not in rows.fields:
        raise UserError(f"tree projections need sentences with a known length; {data.task!r} rows have none")
    return Measure(lambda model, device: tree_projection(model, rows, device, examples=len(rows), seed=0))


def summarise(rows: list[dict], layer: int, decoder: str) -> dict:
    """Means over sentences (JSON-able: NaN becomes None) and a few example trees."""
    mean = {
        key: _mean([r[key] for r in rows if key in r])
        for key in ("t_score", "t_score_nodes", "sci", "sci_random", "parse_f1", "f1_left", "f1_right")
    }
    shown = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in rows[:SHOWN_TREES]
    ]
    return {**mean, "n": len(rows), "layer": layer, "decoder": decoder, "trees": shown}
