"""Two-hop composition over a random knowledge graph (Wang et al. 2024 §3.1; science.md §1).

Atomic facts `h r -> t`; inferred facts `h r1 r2 -> t` whenever (h, r1, b) and (b, r2, t) are atomic facts.
5% of atomic facts are OOD: they are trained as atomic facts but never appear as a hop of a training inferred
fact, so `test_inferred_ood` asks for a composition the model has never seen its facts take part in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from groklab.errors import UserError
from groklab.sizes import DataSize
from groklab.tasks.dataset import Split, TaskData
from groklab.tasks.knowledge import (
    ABSENT,
    choose,
    choose_at_most,
    concat,
    inferred_roles,
    make_split,
    sample_probe,
    shuffled,
    split_sizes,
    take_from_pool,
)
from groklab.tasks.vocab import Layout, build_layout, entity_tokens, relation_tokens

# bytes per two-hop chain while generating: both hops' fact numbers (int64), their OOD flags, the test draw,
# the pool's indices and its permutation (sizes.py)
CHAIN_BYTES = 72
ROLES = {
    "train": "train_inferred",
    "test_id": "test_inferred_id",
    "test_ood": "test_inferred_ood",
    "atomic_id": "id_atomic",
    "atomic_ood": "ood_atomic",
}


@dataclass(frozen=True)
class CompositionConfig:
    """Knowledge-graph and split parameters; defaults are the paper's (|E|=2000, |R|=200, φ=7.2)."""

    task: str = "composition"
    seed: int = 0  # data seed: the generator's own numpy Generator, separate from model init
    n_entities: int = 2000  # |E|, Wang et al. §3.1
    n_relations: int = 200  # |R|
    relations_per_entity: int = 20  # distinct outgoing relations per head entity (each a random tail)
    ood_fraction: float = 0.05  # share of atomic facts that are OOD (never a hop of a training inferred fact)
    test_id_prob: float = 0.005  # P(an ID-ID two-hop fact goes to test_inferred_id rather than the pool)
    phi: float = 7.2  # φ: inferred/atomic-ID ratio, Wang et al. §3.1
    probe_size: int = 3000  # max examples sampled per probe split (0 = all)
    # Each atomic fact appears this many times per epoch. 1 is the paper's design; > 1 is OUR DEVIATION, meant
    # for a small model that forgets the OOD atomic facts, which (unlike ID ones) no inferred fact rehearses
    # (docs/science.md §10). Measured: ×3 lifted ood_atomic only to 0.90 at a constant lr; a decaying lr, not
    # repetition, memorised them all (docs/LOG.md, 2026-12-02). φ still counts distinct inferred facts per
    # distinct ID atomic fact.
    atomic_repeat: int = 1
    # The OOD atomic facts alone get ood_atomic_repeat - 1 extra copies an epoch (8 with atomic_repeat 1: each
    # shown 8 times); 1 = the paper. ALSO A DEVIATION: it targets the one memory no inferred fact rehearses without
    # speeding the ID atomic facts, whose early memorisation lets the circuit form before the inferred facts are
    # memorised. The demo uses 8 so that it memorises every training fact before it groks (docs/results.md).
    ood_atomic_repeat: int = 1

    @property
    def n_atomic(self) -> int:
        return self.n_entities * self.relations_per_entity

    @property
    def n_atomic_ood(self) -> int:
        return round(self.ood_fraction * self.n_atomic)

    @property
    def max_phi(self) -> float:
        """Expected pool size per ID atomic fact: (1-ood)·(1-p_test)·out-degree (science.md §1: ≈0.95·20)."""
        return (1 - self.ood_fraction) * (1 - self.test_id_prob) * self.relations_per_entity

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): every two-hop chain |E|·k·k as candidate (CHAIN_BYTES each),
        the training facts and at most five probes (all of them at probe_size = 0) of 3 tokens."""
        n_chains = self.n_atomic * self.relations_per_entity
        n_inferred = round(self.phi * (self.n_atomic - self.n_atomic_ood))
        train = self.n_atomic * self.atomic_repeat + self.n_atomic_ood * (self.ood_atomic_repeat - 1) + n_inferred
        probes = 5 * self.probe_size or self.n_atomic + n_inferred + n_chains * (self.test_id_prob + self.ood_fraction)
        return DataSize(rows=round(train + probes), n_ctx=3, vocab=1 + self.n_entities + self.n_relations,
                        knobs=("data.n_entities", "data.relations_per_entity"), scratch=n_chains * CHAIN_BYTES)

    def validate(self) -> None:
        if self.task != "composition":
            raise UserError(f"data.task={self.task!r} does not match CompositionConfig; use 'composition'")
        for name in ("n_entities", "n_relations", "relations_per_entity"):
            if getattr(self, name) < 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be >= 1")
        if self.relations_per_entity > self.n_relations:
            raise UserError(
                f"data.relations_per_entity={self.relations_per_entity} exceeds data.n_relations="
                f"{self.n_relations}; each head needs that many distinct relations, lower it or add relations"
            )
        for name in ("ood_fraction", "test_id_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be in [0, 1)")
        if self.probe_size < 0:
            raise UserError(f"data.probe_size={self.probe_size} must be >= 0 (0 = whole splits)")
        for name in ("atomic_repeat", "ood_atomic_repeat"):
            if getattr(self, name) < 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be >= 1 (1 = the paper's design)")
        if not 0 <= self.phi <= self.max_phi:
            raise UserError(
                f"data.phi={self.phi} is infeasible: the training pool holds about {self.max_phi:.2f} inferred "
                f"facts per ID atomic fact; use 0 <= phi <= {self.max_phi:.2f}"
            )


@dataclass(frozen=True)
class Graph:
    """Atomic fact number a = head·k + slot: (head[a], relation[a]) -> tail[a]; ood[a] marks OOD facts."""

    head: np.ndarray
    relation: np.ndarray
    tail: np.ndarray
    ood: np.ndarray
    out_degree: int


def sample_graph(rng: np.random.Generator, cfg: CompositionConfig) -> Graph:
    """Each head gets k distinct random relations (random-key argsort = uniform k-subset), each to a uniform
    random tail (self-loops and repeated tails allowed); exactly round(ood_fraction·|atomic|) facts are OOD."""
    n_e, k = cfg.n_entities, cfg.relations_per_entity
    relations = np.sort(np.argsort(rng.random((n_e, cfg.n_relations)), axis=1)[:, :k], axis=1)
    tails = rng.integers(0, n_e, size=(n_e, k))
    ood = np.zeros(n_e * k, dtype=bool)
    ood[choose(rng, n_e * k, cfg.n_atomic_ood)] = True
    head = np.repeat(np.arange(n_e), k)
    return Graph(head, relations.ravel(), tails.ravel(), ood, k)


def two_hop_chains(g: Graph) -> tuple[np.ndarray, np.ndarray]:
    """All |E|·k·k chains as (first hop, second hop) atomic fact numbers: the second hop starts at the
    first hop's tail, whose k facts are numbers tail·k .. tail·k + k-1."""
    n, k = len(g.head), g.out_degree
    first = np.repeat(np.arange(n), k)
    second = g.tail[first] * k + np.tile(np.arange(k), n)
    return first, second


def atomic_split(layout: Layout, g: Graph, idx: np.ndarray) -> Split:
    h, r = layout.ids("entity", g.head[idx]), layout.ids("relation", g.relation[idx])
    t = layout.ids("entity", g.tail[idx])
    none = np.full(len(idx), ABSENT)
    fields = {"head": h, "r1": r, "r2": none, "bridge": none, "answer": t}
    return make_split(np.stack([h, r, none], axis=1), t, fields, "atomic")


def inferred_split(layout: Layout, g: Graph, first: np.ndarray, second: np.ndarray) -> Split:
    ent, rel = (lambda x: layout.ids("entity", x)), (lambda x: layout.ids("relation", x))
    h, r1, b = ent(g.head[first]), rel(g.relation[first]), ent(g.tail[first])
    r2, t = rel(g.relation[second]), ent(g.tail[second])
    fields = {"head": h, "r1": r1, "r2": r2, "bridge": b, "answer": t}
    return make_split(np.stack([h, r1, r2], axis=1), t, fields, "inferred")


def generate(cfg: CompositionConfig) -> TaskData:
    """The composition dataset of science.md §1, a pure function of `cfg` (same config → identical arrays)."""
    rng = np.random.default_rng(cfg.seed)
    layout = build_layout({"entity": entity_tokens(cfg.n_entities), "relation": relation_tokens(cfg.n_relations)})
    g = sample_graph(rng, cfg)
    first, second = two_hop_chains(g)
    ood1, ood2 = g.ood[first], g.ood[second]
    both_id, both_ood = ~ood1 & ~ood2, ood1 & ood2  # exactly one OOD hop: dropped
    to_test = rng.random(len(first)) < cfg.test_id_prob
    pool, test_id = np.flatnonzero(both_id & ~to_test), np.flatnonzero(both_id & to_test)
    test_ood = np.flatnonzero(both_ood)

    n_id = len(g.ood) - cfg.n_atomic_ood
    pick = pool[take_from_pool(rng, len(pool), round(cfg.phi * n_id), "composition", len(pool) / n_id)]
    train_inferred = inferred_split(layout, g, first[pick], second[pick])
    atomic = atomic_split(layout, g, np.arange(len(g.ood)))

    probes = {
        "id_atomic": atomic.take(choose_at_most(rng, np.flatnonzero(~g.ood), cfg.probe_size)),
        "ood_atomic": atomic.take(choose_at_most(rng, np.flatnonzero(g.ood), cfg.probe_size)),
        "train_inferred": sample_probe(rng, train_inferred, cfg.probe_size),
    }
    for name, idx in (("test_inferred_id", test_id), ("test_inferred_ood", test_ood)):
        idx = choose_at_most(rng, idx, cfg.probe_size)
        probes[name] = inferred_split(layout, g, first[idx], second[idx])
    # all atomic facts (ID and OOD), atomic_repeat times, the OOD ones ood_atomic_repeat - 1 more, + the sample
    extra_ood = [atomic.take(np.flatnonzero(g.ood))] * (cfg.ood_atomic_repeat - 1)
    train = shuffled(rng, concat([atomic] * cfg.atomic_repeat + extra_ood + [train_inferred]))
    info = {
        "n_atomic": len(g.ood),
        "n_atomic_id": n_id,
        "n_atomic_ood": cfg.n_atomic_ood,
        "n_chains": len(first),
        "n_pool": len(pool),
        "n_train_inferred": len(pick),
        "n_test_inferred_id": len(test_id),
        "n_test_inferred_ood": len(test_ood),
        "n_dropped_mixed": int(len(first) - both_id.sum() - both_ood.sum()),
        "split_sizes": split_sizes(train, probes),
    }
    return TaskData("composition", layout.vocab, train, probes, inferred_roles(ROLES, len(pick)), info)
