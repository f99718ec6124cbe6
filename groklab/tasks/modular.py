"""Classic grokking: a binary operation table mod p (Power et al. 2022; Grokfast's setting, science.md §7-8).

Inputs `x op y =`, answer (x op y) mod p. A random `train_fraction` of the table is training data; the rest
is the `valid` probe, evaluated whole (as Power et al. and Grokfast do) unless probe_size limits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from groklab.errors import UserError
from groklab.sizes import DataSize
from groklab.tasks.dataset import TaskData
from groklab.tasks.knowledge import choose, make_split, sample_probe, shuffled, split_sizes
from groklab.tasks.vocab import build_layout

ROLES = {"train": "train_sample", "test_id": "valid"}
TABLE_BYTES = 64  # per equation while generating: the x, y, z columns and the split's mask (sizes.py)


def inverses(p: int) -> np.ndarray:
    """inv[y] = y^-1 mod p for y in 1..p-1 (inv[0] = 0, unused), by searching the product table."""
    r = np.arange(p)
    return np.argmax(np.outer(r, r) % p == 1, axis=1)


# op -> (answer table builder, whether y = 0 is excluded). A lookup table, not an if-chain.
OPERATIONS = {
    "+": (lambda x, y, p: (x + y) % p, False),
    "-": (lambda x, y, p: (x - y) % p, False),
    "*": (lambda x, y, p: (x * y) % p, True),  # Grokfast: x in 0..p-1, y in 1..p-1 (9,312 at p=97)
    "/": (lambda x, y, p: (x * inverses(p)[y]) % p, True),  # x / y = x·y^-1, y != 0
}


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


@dataclass(frozen=True)
class ModularConfig:
    """Defaults are Grokfast's headline setting: x·y mod 97, half the table for training."""

    task: str = "modular"
    seed: int = 0  # data seed: the generator's own numpy Generator (which equations are training data)
    modulus: int = 97  # p, Power et al. 2022
    operation: Literal["+", "-", "*", "/"] = "*"  # the keys of OPERATIONS
    train_fraction: float = 0.5  # share of the table used for training; the rest is `valid`
    probe_size: int = 0  # max examples per probe (0 = whole splits, as Power et al. evaluate)

    @property
    def table_size(self) -> int:
        excluded_zero = OPERATIONS[self.operation][1]
        return self.modulus * (self.modulus - 1 if excluded_zero else self.modulus)

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): the whole table as equations `x op y =` (and its x, y, z
        columns, TABLE_BYTES a row) split into training and valid, and a sample of the training split."""
        sample = self.probe_size or round(self.train_fraction * self.table_size)
        return DataSize(rows=self.table_size + sample, n_ctx=4, vocab=self.modulus + 3, knobs=("data.modulus",),
                        scratch=self.table_size * TABLE_BYTES)

    def validate(self) -> None:
        if self.task != "modular":
            raise UserError(f"data.task={self.task!r} does not match ModularConfig; use 'modular'")
        if self.modulus < 2:
            raise UserError(f"data.modulus={self.modulus} must be >= 2")
        if self.operation == "/" and not is_prime(self.modulus):
            raise UserError(f"data.modulus={self.modulus} must be prime for division (every y != 0 invertible)")
        if not 0 < self.train_fraction < 1:
            raise UserError(f"data.train_fraction={self.train_fraction} must be in (0, 1)")
        n_train = round(self.train_fraction * self.table_size)
        if not 0 < n_train < self.table_size:
            raise UserError(f"data.train_fraction={self.train_fraction} leaves an empty train or valid split")
        if self.probe_size < 0:
            raise UserError(f"data.probe_size={self.probe_size} must be >= 0 (0 = whole splits)")


def generate(cfg: ModularConfig) -> TaskData:
    """The operation table split into train / valid, a pure function of `cfg`."""
    rng = np.random.default_rng(cfg.seed)
    p = cfg.modulus
    layout = build_layout({"number": [str(i) for i in range(p)], "op": [cfg.operation], "eq": ["="]})
    build, no_zero = OPERATIONS[cfg.operation]
    x, y = (a.ravel() for a in np.meshgrid(np.arange(p), np.arange(1 if no_zero else 0, p), indexing="ij"))
    z = build(x, y, p)
    num = lambda v: layout.ids("number", v)  # noqa: E731
    op, eq = np.full(len(x), layout.offsets["op"]), np.full(len(x), layout.offsets["eq"])
    fields = {"x": num(x), "y": num(y), "op": op, "answer": num(z)}
    table = make_split(np.stack([num(x), op, num(y), eq], axis=1), num(z), fields, "equation")

    train_idx = choose(rng, len(x), round(cfg.train_fraction * len(x)))
    valid_mask = np.ones(len(x), dtype=bool)
    valid_mask[train_idx] = False
    train = shuffled(rng, table.take(train_idx))
    probes = {
        "train_sample": sample_probe(rng, table.take(train_idx), cfg.probe_size),
        "valid": sample_probe(rng, table.take(np.flatnonzero(valid_mask)), cfg.probe_size),
    }
    info = {"table_size": len(x), "split_sizes": split_sizes(train, probes)}
    return TaskData("modular", layout.vocab, train, probes, dict(ROLES), info)
