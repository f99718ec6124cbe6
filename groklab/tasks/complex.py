"""Complex reasoning with a large search space (Wang et al. 2024 §5, App. F; science.md §3).

The comparison knowledge base, but the OOD entities' atomic facts are never trained: training holds the ID
atomic facts, a small share of ID–ID comparisons and a small share of ID–OOD comparisons. The test asks
OOD–OOD comparisons that can only be answered by chaining training comparisons through known ID values.

Derivability (the test filter), per attribute, with "a ≥ b" the only kind of step (as the paper's graph):
- From a training comparison between an OOD entity o and an ID entity i with known value v_i we learn
  o ≥ v_i (label > or =) or o ≤ v_i (label < or =). So o's value lies in [lo(o), hi(o)], where lo(o) is the
  largest such v_i with o ≥ i and hi(o) the smallest with o ≤ i.
- o1 ≥ o2 is *derivable* iff lo(o1) ≥ hi(o2). This equals reachability o1 → o2 in the paper's graph (edges
  a → b iff a ≥ b, from the ID–OOD training comparisons plus all ID values): a detour through another OOD
  entity adds nothing, since i ≥ o' ≥ i' already gives v_i ≥ v_i'.
- The label is = if both o1 ≥ o2 and o2 ≥ o1 are derivable, > if only o1 ≥ o2, < if only o2 ≥ o1. This is
  always the true label: if v1 = v2 is true, any derivation of o1 ≥ o2 passes through equalities, which
  give both directions.
- A query is *hard* (kept) if it is derivable but NOT derivable from the comparison facts alone: no path
  o1 → o2 or o2 → o1 in the graph of all training comparisons (ID–ID and ID–OOD) without the ID values.
  OOD–OOD comparisons are never trained, so no test query is directly given.
Test: `n_test_per_label` hard queries per label (fewer, equally for all labels, if a small knowledge base
has fewer; `info["n_test_per_label"]` says how many).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from groklab.errors import UserError
from groklab.sizes import FLOAT32 as FLOAT32_BYTES
from groklab.sizes import DataSize
from groklab.tasks.comparison import (
    KB_KNOBS,
    PAIR_BYTES,
    atomic_split,
    comparison_split,
    kb_layout,
    kb_vocab,
    n_pairs,
    validate_kb,
)
from groklab.tasks.dataset import TaskData
from groklab.tasks.knowledge import (
    AttributeKB,
    attribute_pairs,
    build_attribute_kb,
    choose,
    compare,
    concat,
    sample_probe,
    shuffled,
    split_sizes,
)

ROLES = {"train": "train_inferred", "test_id": "test_inferred", "atomic_id": "id_atomic"}  # OOD atomic facts: untrained
Ordered = tuple[np.ndarray, np.ndarray, np.ndarray]  # (attribute, e1, e2) of ordered pairs


@dataclass(frozen=True)
class ComplexConfig:
    """Defaults are the paper's: 18K ID atomic + 3% of ID–ID (437K) + 3% of ID–OOD (108K) = 563K facts."""

    task: str = "complex"
    seed: int = 0  # data seed: the generator's own numpy Generator, separate from model init
    n_entities: int = 1000  # |E|, Wang et al. §5
    n_attributes: int = 20
    n_values: int = 20  # ordinal values per attribute
    ood_fraction: float = 0.1  # share of entities that are OOD per attribute; their atomic facts stay untrained
    test_id_fraction: float = 0.1  # ID–ID pairs held out of the pool, as the paper's notebook does
    id_id_fraction: float = 0.03  # share of the ID–ID comparison pool in training (App. F: 437K)
    id_ood_fraction: float = 0.03  # share of all ID–OOD comparisons in training (App. F: 108K)
    n_test_per_label: int = 50  # hard OOD–OOD test queries per label <, =, > (App. F: 150 in all)
    probe_size: int = 3000  # max examples sampled per probe split (0 = all); ood_atomic is always whole

    @property
    def n_ood(self) -> int:
        return round(self.ood_fraction * self.n_entities)

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): every entity pair as candidate (PAIR_BYTES each) and, per
        attribute, |E|×|E| float32 reachability matrices; the ID atomic facts, the sampled ID–ID and ID–OOD
        comparisons, and the probes (ood_atomic whole; at probe_size = 0, all of them)."""
        n_id = self.n_entities - self.n_ood
        id_id = self.n_attributes * n_id * (n_id - 1) * (1 - self.test_id_fraction) * self.id_id_fraction
        id_ood = self.n_attributes * 2 * n_id * self.n_ood * self.id_ood_fraction
        train = self.n_attributes * n_id + id_id + id_ood
        probes = (3 * self.probe_size or train) + self.n_attributes * self.n_ood + 3 * self.n_test_per_label
        reach = 3 * FLOAT32_BYTES * self.n_entities**2
        return DataSize(rows=round(train + probes), n_ctx=3, vocab=kb_vocab(self), knobs=KB_KNOBS,
                        scratch=n_pairs(self) * PAIR_BYTES + reach)

    def validate(self) -> None:
        validate_kb(self, "complex")
        for name in ("id_id_fraction", "id_ood_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be in [0, 1]")
        if self.n_ood < 2:
            raise UserError(
                f"data.ood_fraction={self.ood_fraction} gives {self.n_ood} OOD entities per attribute; "
                "OOD–OOD test queries need at least 2, raise it or n_entities"
            )
        if self.n_test_per_label < 1:
            raise UserError(f"data.n_test_per_label={self.n_test_per_label} must be >= 1")


def orient(values: np.ndarray, facts: Ordered) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training comparisons as (attribute, high, low) edges meaning high ≥ low; `=` gives both directions."""
    attr, e1, e2 = facts
    label = compare(values[e1, attr], values[e2, attr])
    ge, le = label >= 1, label <= 1
    return (
        np.concatenate([attr[ge], attr[le]]),
        np.concatenate([e1[ge], e2[le]]),
        np.concatenate([e2[ge], e1[le]]),
    )


def value_bounds(kb: AttributeKB, cross: Ordered, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """lo[a, o], hi[a, o]: bounds on OOD entity o's value from its training comparisons with ID entities
    (lo = -1, hi = n_values where a side is unknown)."""
    attr, high, low = orient(kb.values, cross)
    lo = np.full(kb.ood.shape, -1)
    hi = np.full(kb.ood.shape, n_values)
    up = kb.ood[attr, high]  # an OOD entity above an ID one: a lower bound
    np.maximum.at(lo, (attr[up], high[up]), kb.values[low[up], attr[up]])
    down = kb.ood[attr, low]
    np.minimum.at(hi, (attr[down], low[down]), kb.values[high[down], attr[down]])
    return lo, hi


def comparison_reach(kb: AttributeKB, facts: Ordered, attr: int) -> np.ndarray:
    """reach[k, e]: entity e is reachable from the k-th OOD entity of `attr` along `≥` edges of the training
    comparisons alone (boolean frontier expansion by matrix products until nothing changes)."""
    a, high, low = orient(kb.values, facts)
    adj = np.zeros((kb.n_entities, kb.n_entities), dtype=np.float32)
    adj[high[a == attr], low[a == attr]] = 1
    reach = adj[np.flatnonzero(kb.ood[attr])] > 0
    while True:
        grown = reach | ((reach.astype(np.float32) @ adj) > 0)
        if np.array_equal(grown, reach):
            return reach
        reach = grown


def hard_queries(kb: AttributeKB, id_id: Ordered, cross: Ordered, n_values: int) -> tuple[Ordered, np.ndarray]:
    """All hard OOD–OOD queries (see module docstring) as ordered pairs, with their derived labels."""
    lo, hi = value_bounds(kb, cross, n_values)
    facts = tuple(np.concatenate([x, y]) for x, y in zip(id_id, cross, strict=True))
    found: list[np.ndarray] = []
    for a in range(kb.n_attributes):
        ood = np.flatnonzero(kb.ood[a])
        easy = comparison_reach(kb, facts, a)[:, ood]  # [k1, k2]: ood[k1] ≥ ood[k2] from comparisons alone
        ge = lo[a, ood][:, None] >= hi[a, ood][None, :]  # ood[k1] ≥ ood[k2] derivable with ID values
        derivable, easy_any = ge | ge.T, easy | easy.T
        k1, k2 = np.nonzero(derivable & ~easy_any & ~np.eye(len(ood), dtype=bool))
        label = np.where(ge[k1, k2] & ge[k2, k1], 1, np.where(ge[k1, k2], 2, 0))
        found.append(np.stack([np.full(len(k1), a), ood[k1], ood[k2], label], axis=1))
    rows = np.concatenate(found)
    return (rows[:, 0], rows[:, 1], rows[:, 2]), rows[:, 3]


def balanced_test(rng: np.random.Generator, queries: Ordered, labels: np.ndarray, per_label: int) -> Ordered:
    """`per_label` queries of each label (or the most that every label can supply); error if none."""
    by_label = [np.flatnonzero(labels == c) for c in range(3)]
    k = min(per_label, *(len(idx) for idx in by_label))
    if k == 0:
        counts = ", ".join(f"{c} {len(idx)}" for c, idx in zip("<=>", by_label, strict=True))
        raise UserError(
            f"complex: a label has no derivable-but-not-direct OOD–OOD query in this small knowledge base "
            f"({counts}); raise data.n_entities or data.id_ood_fraction"
        )
    pick = np.concatenate([idx[choose(rng, len(idx), k)] for idx in by_label])
    return tuple(x[pick] for x in queries)


def generate(cfg: ComplexConfig) -> TaskData:
    """The complex-reasoning dataset of science.md §3, a pure function of `cfg` (same config → identical arrays)."""
    rng = np.random.default_rng(cfg.seed)
    layout = kb_layout(cfg)
    kb = build_attribute_kb(rng, cfg.n_entities, cfg.n_attributes, cfg.n_values, cfg.n_ood)
    pairs, n_ood = attribute_pairs(kb)
    id_pairs, cross = pairs.select(n_ood == 0), pairs.select(n_ood == 1)
    pool = id_pairs.select(rng.random(len(id_pairs)) >= cfg.test_id_fraction)
    n_pool, n_cross = 2 * len(pool), 2 * len(cross)
    id_id = pool.ordered(choose(rng, n_pool, round(cfg.id_id_fraction * n_pool)))
    id_ood = cross.ordered(choose(rng, n_cross, round(cfg.id_ood_fraction * n_cross)))
    queries, labels = hard_queries(kb, id_id, id_ood, cfg.n_values)
    test = balanced_test(rng, queries, labels, cfg.n_test_per_label)

    ood = kb.ood.ravel()
    id_atomic = atomic_split(layout, kb, np.flatnonzero(~ood))
    train_inferred = concat([comparison_split(layout, kb, id_id), comparison_split(layout, kb, id_ood)])
    probes = {
        "id_atomic": sample_probe(rng, id_atomic, cfg.probe_size),
        "ood_atomic": atomic_split(layout, kb, np.flatnonzero(ood)),  # never trained: a chance-level check
        "train_inferred": sample_probe(rng, train_inferred, cfg.probe_size),
        "test_inferred": comparison_split(layout, kb, test),
    }
    train = shuffled(rng, concat([id_atomic, train_inferred]))  # no OOD atomic facts (§5)
    info = {
        "n_atomic_id": len(id_atomic),
        "n_pool_id_id": n_pool,
        "n_train_id_id": len(id_id[0]),
        "n_id_ood": n_cross,
        "n_train_id_ood": len(id_ood[0]),
        "n_hard_queries": {label: int((labels == c).sum()) for c, label in enumerate("<=>")},
        "n_test_per_label": len(test[0]) // 3,
        "split_sizes": split_sizes(train, probes),
    }
    return TaskData("complex", layout.vocab, train, probes, dict(ROLES), info)
