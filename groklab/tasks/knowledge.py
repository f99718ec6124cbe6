"""Helpers shared by the knowledge-base tasks: seeded sampling, building splits from token-id columns, and
the attribute knowledge base behind comparison and complex reasoning (Wang et al. 2024 §4, §5).

Everything is vectorised numpy over whole fact tables; the only loops are over a handful of splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from groklab.errors import UserError
from groklab.tasks.dataset import ABSENT, Split  # ABSENT: a field (or input position) a fact does not have


def choose(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k of range(n) without replacement, sorted (so files list facts in knowledge-base order)."""
    return np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)


def choose_at_most(rng: np.random.Generator, idx: np.ndarray, size: int) -> np.ndarray:
    """At most `size` (0 = all) of the fact numbers `idx`, in their order."""
    return idx if size <= 0 or len(idx) <= size else idx[choose(rng, len(idx), size)]


def sample_probe(rng: np.random.Generator, split: Split, size: int) -> Split:
    """At most `size` rows of `split` (0 = all), as the paper's `choose(facts, 3000)`."""
    if size <= 0 or len(split) <= size:
        return split
    return split.take(choose(rng, len(split), size))


def inferred_roles(roles: dict[str, str], n_train_inferred: int) -> dict[str, str]:
    """The task's probe roles; at φ = 0 (atomic facts only: a curriculum's first stage) there are no training
    inferred facts, so fit is read on the ID atomic facts (and, as always, the OOD ones)."""
    return dict(roles) if n_train_inferred else roles | {"train": "id_atomic"}


def take_from_pool(rng: np.random.Generator, pool: int, k: int, what: str, max_phi: float) -> np.ndarray:
    """k indices of a pool of `pool` facts; a UserError with the feasible maximum when the pool is too small."""
    if k > pool:
        raise UserError(
            f"{what}: phi asks for {k:,} inferred facts but this seed's pool holds only {pool:,}; "
            f"lower phi to at most {max_phi:.2f}"
        )
    return choose(rng, pool, k)


def make_split(inputs: np.ndarray, answers: np.ndarray, fields: dict[str, np.ndarray], kind: str) -> Split:
    """A split from input token ids [N, L] where ABSENT marks positions after the input's end."""
    inputs = np.asarray(inputs, dtype=np.int64)
    present = inputs != ABSENT
    if np.any(present[:, 1:] & ~present[:, :-1]):
        raise ValueError("absent input positions must be trailing")
    return Split(
        tokens=np.where(present, inputs, 0),
        lengths=present.sum(axis=1).astype(np.int64),
        answers=np.asarray(answers, dtype=np.int64),
        fields={k: np.asarray(v, dtype=np.int64) for k, v in fields.items()},
        kinds=np.full(len(answers), kind),
    )


def concat(parts: list[Split]) -> Split:
    """Rows of all parts, in order; inputs are padded to the widest part."""
    width = max(p.tokens.shape[1] for p in parts)
    padded = [np.pad(p.tokens, ((0, 0), (0, width - p.tokens.shape[1]))) for p in parts]
    return Split(
        tokens=np.concatenate(padded),
        lengths=np.concatenate([p.lengths for p in parts]),
        answers=np.concatenate([p.answers for p in parts]),
        fields={k: np.concatenate([p.fields[k] for p in parts]) for k in parts[0].fields},
        kinds=np.concatenate([p.kinds for p in parts]),
    )


def shuffled(rng: np.random.Generator, split: Split) -> Split:
    """The training set in a seeded random order, so no batch sees only atomic or only inferred facts."""
    return split.take(rng.permutation(len(split)))


def split_sizes(train: Split, probes: dict[str, Split]) -> dict:
    """Row counts; probes apart, since a probe may be called `train` (modular: a sample of training)."""
    return {"train": len(train), "probes": {name: len(p) for name, p in probes.items()}}


def lookup_pairs(keys: tuple[np.ndarray, np.ndarray], table: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """For each query pair (a, b) in `keys`, the v of the table row (a, b, v); ABSENT if there is none.
    Vectorised by sorting the table on a combined key (used to rebuild bridges and values of loaded facts)."""
    a, b, v = table
    if len(a) == 0:
        return np.full(len(keys[0]), ABSENT)
    base = int(max(b.max(), keys[1].max(initial=0))) + 2  # > every b, and b = -1 cannot alias a row
    stored = a * base + b
    order = np.argsort(stored, kind="stable")
    stored, v = stored[order], v[order]
    query = keys[0] * base + keys[1]
    pos = np.minimum(np.searchsorted(stored, query), len(stored) - 1)
    return np.where(stored[pos] == query, v[pos], ABSENT)


# ---- the attribute knowledge base (comparison, complex reasoning) -------------------------------------


@dataclass(frozen=True)
class AttributeKB:
    """values[e, a] in 0..n_values-1; ood[a, e] marks the OOD entities of attribute a (a fresh partition each)."""

    values: np.ndarray
    ood: np.ndarray

    @property
    def n_entities(self) -> int:
        return self.values.shape[0]

    @property
    def n_attributes(self) -> int:
        return self.values.shape[1]


def build_attribute_kb(
    rng: np.random.Generator, n_entities: int, n_attributes: int, n_values: int, n_ood: int
) -> AttributeKB:
    """Uniform random values, and for every attribute exactly `n_ood` OOD entities (§4: a fresh 90/10 split)."""
    values = rng.integers(0, n_values, size=(n_entities, n_attributes))
    order = np.argsort(rng.random((n_attributes, n_entities)), axis=1)
    ood = np.zeros((n_attributes, n_entities), dtype=bool)
    np.put_along_axis(ood, order[:, :n_ood], True, axis=1)
    return AttributeKB(values=values, ood=ood)


def compare(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Label index of `v1 ? v2`: 0 for <, 1 for =, 2 for > (the paper's `compare`)."""
    return np.sign(np.asarray(v1) - np.asarray(v2)).astype(np.int64) + 1


@dataclass(frozen=True)
class Pairs:
    """Unordered entity pairs (i < j) per attribute, flattened: attr[k], i[k], j[k]. Ordered pair number
    2k is (i, j) and 2k+1 is (j, i): both orientations of a pair always land in the same split, as in the
    paper's notebook (it assigns `itertools.combinations` pairs, then adds the flipped fact)."""

    attr: np.ndarray
    i: np.ndarray
    j: np.ndarray

    def __len__(self) -> int:
        return len(self.attr)

    def select(self, mask: np.ndarray) -> Pairs:
        return Pairs(self.attr[mask], self.i[mask], self.j[mask])

    def ordered(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attr, e1, e2) of ordered pair numbers `idx` (see class docstring)."""
        k, flip = idx // 2, (idx % 2).astype(bool)
        i, j = self.i[k], self.j[k]
        return self.attr[k], np.where(flip, j, i), np.where(flip, i, j)

    def all_ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.ordered(np.arange(2 * len(self)))


def attribute_pairs(kb: AttributeKB) -> tuple[Pairs, np.ndarray]:
    """All unordered pairs of distinct entities for every attribute, and how many endpoints are OOD (0, 1, 2).
    Self-pairs (e, e) are excluded, as in the paper's notebook (`itertools.combinations(entities, 2)`)."""
    i, j = (x.astype(np.int32) for x in np.triu_indices(kb.n_entities, k=1))  # int32: 10M pairs at paper size
    attr = np.repeat(np.arange(kb.n_attributes, dtype=np.int32), len(i))
    i, j = np.tile(i, kb.n_attributes), np.tile(j, kb.n_attributes)
    n_ood = kb.ood[attr, i].astype(np.int8) + kb.ood[attr, j]
    return Pairs(attr, i, j), n_ood
