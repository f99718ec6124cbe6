"""Comparison over an attribute knowledge base (Wang et al. 2024 §4; science.md §2).

Atomic facts `e attr -> value`; inferred facts `attr <q> e1 <mask> e2 -> label` (the authors' notebook
template, `data.template="paper"`, e1 and e2 at positions 2 and 4) or `attr e1 e2 -> label` (`"short"`),
label in {<, =, >} spelled with three tokens per attribute. Each attribute has its own 90/10 ID/OOD entity
partition; ID–ID pairs feed training (and `test_inferred_id`), OOD–OOD pairs are `test_inferred_ood`; pairs
mixing the two are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from groklab.errors import UserError
from groklab.sizes import DataSize
from groklab.tasks.dataset import Split, TaskData
from groklab.tasks.knowledge import (
    ABSENT,
    AttributeKB,
    Pairs,
    attribute_pairs,
    build_attribute_kb,
    choose_at_most,
    compare,
    concat,
    inferred_roles,
    make_split,
    sample_probe,
    shuffled,
    split_sizes,
    take_from_pool,
)
from groklab.tasks.vocab import Layout, attribute_tokens, build_layout, entity_tokens, label_tokens, value_tokens

# The grok signal is the OOD test: a ranking fitted to the training comparisons alone reaches ~0.9-0.95 on the
# ID test without any atomic fact, so only OOD accuracy shows that values are retrieved and compared (science.md §10).
ROLES = {
    "train": "train_inferred",
    "test_id": "test_inferred_id",
    "test_ood": "test_inferred_ood",
    "grok": "test_inferred_ood",
    "atomic_id": "id_atomic",
    "atomic_ood": "ood_atomic",
}


@dataclass(frozen=True)
class ComparisonConfig:
    """Knowledge-base and split parameters; defaults are the paper's (1000 entities, 20 attributes, φ=7.2)."""

    task: str = "comparison"
    seed: int = 0  # data seed: the generator's own numpy Generator, separate from model init
    n_entities: int = 1000  # |E|, Wang et al. §4
    n_attributes: int = 20  # attributes, each with its own ID/OOD entity partition
    n_values: int = 20  # ordinal values per attribute, drawn uniformly
    ood_fraction: float = 0.1  # share of entities that are OOD, drawn afresh for every attribute
    test_id_fraction: float = 0.1  # share of ID–ID entity pairs held out as test_inferred_id
    phi: float = 7.2  # φ: inferred/atomic-ID ratio, Wang et al. §4
    probe_size: int = 3000  # max examples sampled per probe split (0 = all)
    # paper: `attr <q> e1 <mask> e2` as the authors' notebook (5 input tokens); short: `attr e1 e2` (3 tokens).
    # Same information; the computation and the positions causal tracing reads differ.
    template: Literal["paper", "short"] = "paper"  # the keys of TEMPLATE_POSITIONS

    @property
    def n_ood(self) -> int:
        return round(self.ood_fraction * self.n_entities)

    @property
    def n_atomic_id(self) -> int:
        return self.n_attributes * (self.n_entities - self.n_ood)

    @property
    def max_phi(self) -> float:
        """Pool per ID atomic fact: each ID entity meets (n_id - 1) others, (1 - test_id_fraction) kept."""
        return (self.n_entities - self.n_ood - 1) * (1 - self.test_id_fraction)

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): every entity pair of every attribute as candidate
        (PAIR_BYTES each), all atomic facts, the φ-sampled comparisons and at most five probes (at probe_size = 0:
        all of them)."""
        n_inferred = round(self.phi * self.n_atomic_id)
        n_atomic = self.n_attributes * self.n_entities
        probes = 5 * self.probe_size or n_atomic + n_inferred + 2 * n_pairs(self)
        return DataSize(rows=n_atomic + n_inferred + probes, n_ctx=max(TEMPLATE_POSITIONS[self.template].values()) + 1,
                        vocab=kb_vocab(self), knobs=KB_KNOBS, scratch=n_pairs(self) * PAIR_BYTES)

    def validate(self) -> None:
        validate_kb(self, "comparison")
        if not 0 <= self.phi <= self.max_phi:
            raise UserError(
                f"data.phi={self.phi} is infeasible: the training pool holds about {self.max_phi:.2f} comparisons "
                f"per ID atomic fact; use 0 <= phi <= {self.max_phi:.2f}"
            )


class KBConfig(Protocol):
    """The knowledge-base settings that ComparisonConfig and ComplexConfig share."""

    task: str
    n_entities: int
    n_attributes: int
    n_values: int
    ood_fraction: float
    test_id_fraction: float
    probe_size: int

    @property
    def n_ood(self) -> int: ...


KB_KNOBS = ("data.n_entities", "data.n_attributes")  # what makes a knowledge base large (sizes.py)
PAIR_BYTES = 40  # per entity pair while generating: attribute and entities (int32), OOD count, split draw, copies


def n_pairs(cfg: KBConfig) -> int:
    """Unordered pairs of distinct entities, every attribute: the candidates `attribute_pairs` builds."""
    return cfg.n_attributes * cfg.n_entities * (cfg.n_entities - 1) // 2


def kb_vocab(cfg: KBConfig) -> int:
    """<pad>, entities, attributes, values, three labels per attribute and the paper template's separators."""
    separators = len(SEPARATORS) if getattr(cfg, "template", "short") == "paper" else 0
    return 1 + cfg.n_entities + cfg.n_attributes + cfg.n_values + 3 * cfg.n_attributes + separators


def validate_kb(cfg: KBConfig, task: str) -> None:
    """Checks shared by comparison and complex reasoning (same knowledge base)."""
    if cfg.task != task:
        raise UserError(f"data.task={cfg.task!r} does not match this config class; use {task!r}")
    for name, low in (("n_entities", 2), ("n_attributes", 1), ("n_values", 1)):
        if getattr(cfg, name) < low:
            raise UserError(f"data.{name}={getattr(cfg, name)} must be >= {low}")
    for name in ("ood_fraction", "test_id_fraction"):
        if not 0 <= getattr(cfg, name) < 1:
            raise UserError(f"data.{name}={getattr(cfg, name)} must be in [0, 1)")
    if cfg.n_entities - cfg.n_ood < 2:
        raise UserError(f"data.ood_fraction={cfg.ood_fraction} leaves fewer than 2 ID entities; lower it")
    if cfg.probe_size < 0:
        raise UserError(f"data.probe_size={cfg.probe_size} must be >= 0 (0 = whole splits)")


# Input position of each token of an inferred fact, per template (read by causal tracing and the logit lens).
TEMPLATE_POSITIONS = {
    "paper": {"attribute": 0, "e1": 2, "e2": 4},
    "short": {"attribute": 0, "e1": 1, "e2": 2},
}
SEPARATORS = ("<q>", "<mask>")  # the paper template's query and separator tokens


def kb_layout(cfg: KBConfig) -> Layout:
    groups = {
        "entity": entity_tokens(cfg.n_entities),
        "attribute": attribute_tokens(cfg.n_attributes),
        "value": value_tokens(cfg.n_values),
        "label": label_tokens(cfg.n_attributes),
    }
    if getattr(cfg, "template", "short") == "paper":
        groups["separator"] = list(SEPARATORS)
    return build_layout(groups)


def template_of(split: Split) -> str:
    """Which template a split's inferred facts use, read from their input length (5 tokens: paper)."""
    inferred = split.lengths[split.kinds == "inferred"] if split.kinds is not None else split.lengths
    return "paper" if len(inferred) and int(inferred.max()) == 5 else "short"


def atomic_split(layout: Layout, kb: AttributeKB, idx: np.ndarray, width: int = 3) -> Split:
    """Atomic facts by number a·|E| + e (the order of `kb.ood.ravel()`): `e attr -> value`, padded to `width`
    input columns (the inferred facts' width, so every split of a dataset has one shape)."""
    attr, entity = np.divmod(idx, kb.n_entities)
    e, a = layout.ids("entity", entity), layout.ids("attribute", attr)
    v = layout.ids("value", kb.values[entity, attr])
    none = np.full(len(idx), ABSENT)
    fields = {"attribute": a, "entity": e, "value": v, "e1": none, "e2": none, "v1": none, "v2": none, "answer": v}
    return make_split(np.stack([e, a] + [none] * (width - 2), axis=1), v, fields, "atomic")


def comparison_split(
    layout: Layout, kb: AttributeKB, ordered: tuple[np.ndarray, ...], template: str = "short"
) -> Split:
    """Inferred facts `attr <q> e1 <mask> e2 -> label` (paper) or `attr e1 e2 -> label` (short) for ordered
    pairs (attr, e1, e2)."""
    attr, e1, e2 = ordered
    v1, v2 = kb.values[e1, attr], kb.values[e2, attr]
    label = layout.ids("label", 3 * attr.astype(np.int64) + compare(v1, v2))
    a = layout.ids("attribute", attr)
    t1, t2 = layout.ids("entity", e1), layout.ids("entity", e2)
    none = np.full(len(attr), ABSENT)
    fields = {
        "attribute": a,
        "e1": t1,
        "e2": t2,
        "v1": layout.ids("value", v1),
        "v2": layout.ids("value", v2),
        "entity": none,
        "value": none,
        "answer": label,
    }
    if template == "paper":
        q, mask = (np.full(len(attr), layout.ids("separator", i)) for i in range(2))
        inputs = np.stack([a, q, t1, mask, t2], axis=1)
    else:
        inputs = np.stack([a, t1, t2], axis=1)
    return make_split(inputs, label, fields, "inferred")


def breakdowns(split: Split) -> dict[str, np.ndarray]:
    """Row groups of a comparison probe whose accuracies show the mechanism (science.md §10): per label (lt, eq, gt)
    and per value gap |v1 - v2| (0, 1, 2-3, 4-7, 8+). A model that compares retrieved values is flat across
    gaps and gets ties right; a ranking shortcut rises with the gap and gets ties ~0.3. Atomic rows: none."""
    v1, v2 = split.fields.get("v1"), split.fields.get("v2")
    if v1 is None or v2 is None:
        return {}
    inferred = (v1 >= 0) & (v2 >= 0)  # value token ids increase with the value
    if not inferred.any():
        return {}
    label, gap = compare(v1, v2), np.abs(v1 - v2)
    groups = {"lt": label == 0, "eq": label == 1, "gt": label == 2}
    groups |= {"gap0": gap == 0, "gap1": gap == 1, "gap2-3": (gap >= 2) & (gap <= 3)}
    groups |= {"gap4-7": (gap >= 4) & (gap <= 7), "gap8+": gap >= 8}
    return {name: mask & inferred for name, mask in groups.items()}


def answer_classes(split: Split) -> np.ndarray | None:
    """The label class (0 <, 1 =, 2 >) of each inferred row: labels are spelled per attribute, so the
    no-information baseline is the majority class, not the most frequent label token."""
    v1, v2 = split.fields.get("v1"), split.fields.get("v2")
    if v1 is None or v2 is None or not ((v1 >= 0) & (v2 >= 0)).all():
        return None
    return compare(v1, v2)


def ordered_probe(
    rng: np.random.Generator, layout: Layout, kb: AttributeKB, pairs: Pairs, size: int, template: str = "short"
) -> Split:
    """At most `size` ordered pairs (both orientations of every unordered pair are candidates)."""
    picked = pairs.ordered(choose_at_most(rng, np.arange(2 * len(pairs)), size))
    return comparison_split(layout, kb, picked, template)


def generate(cfg: ComparisonConfig) -> TaskData:
    """The comparison dataset of science.md §2, a pure function of `cfg` (same config → identical arrays)."""
    rng = np.random.default_rng(cfg.seed)
    layout = kb_layout(cfg)
    kb = build_attribute_kb(rng, cfg.n_entities, cfg.n_attributes, cfg.n_values, cfg.n_ood)
    pairs, n_ood = attribute_pairs(kb)
    id_pairs, ood_pairs = pairs.select(n_ood == 0), pairs.select(n_ood == 2)  # mixed pairs: dropped
    to_test = rng.random(len(id_pairs)) < cfg.test_id_fraction  # per unordered pair: no flipped leak
    pool, test_id = id_pairs.select(~to_test), id_pairs.select(to_test)

    n_pool = 2 * len(pool)
    pick = take_from_pool(rng, n_pool, round(cfg.phi * cfg.n_atomic_id), "comparison", n_pool / cfg.n_atomic_id)
    train_inferred = comparison_split(layout, kb, pool.ordered(pick), cfg.template)
    width = max(TEMPLATE_POSITIONS[cfg.template].values()) + 1
    atomic = atomic_split(layout, kb, np.arange(kb.ood.size), width)
    ood = kb.ood.ravel()
    probes = {
        "id_atomic": atomic.take(choose_at_most(rng, np.flatnonzero(~ood), cfg.probe_size)),
        "ood_atomic": atomic.take(choose_at_most(rng, np.flatnonzero(ood), cfg.probe_size)),
        "train_inferred": sample_probe(rng, train_inferred, cfg.probe_size),
        "test_inferred_id": ordered_probe(rng, layout, kb, test_id, cfg.probe_size, cfg.template),
        "test_inferred_ood": ordered_probe(rng, layout, kb, ood_pairs, cfg.probe_size, cfg.template),
    }
    train = shuffled(rng, concat([atomic, train_inferred]))  # all atomic facts (ID and OOD) + the sample
    info = {
        "n_atomic": int(kb.ood.size),
        "n_atomic_id": cfg.n_atomic_id,
        "n_atomic_ood": int(ood.sum()),
        "n_pool": n_pool,
        "n_train_inferred": len(pick),
        "n_test_inferred_id": 2 * len(test_id),
        "n_test_inferred_ood": 2 * len(ood_pairs),
        "split_sizes": split_sizes(train, probes),
    }
    return TaskData("comparison", layout.vocab, train, probes, inferred_roles(ROLES, len(pick)), info)
