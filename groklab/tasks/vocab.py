"""Token names and the vocabulary layout of a task: named groups of tokens laid out after `<pad>`.

Token spellings follow the paper's notebooks (`<e_12>`, `<r_3>`, `<attr_4>`, values `<7>`, comparison labels
`<attr_4_0>` / `_1` / `_2` for < = >), so files exported in the paper's format need no renaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from groklab.tasks.dataset import PAD, Vocab


def entity_tokens(n: int) -> list[str]:
    return [f"<e_{i}>" for i in range(n)]


def relation_tokens(n: int) -> list[str]:
    return [f"<r_{i}>" for i in range(n)]


def attribute_tokens(n: int) -> list[str]:
    return [f"<attr_{i}>" for i in range(n)]


def value_tokens(n: int) -> list[str]:
    return [f"<{i}>" for i in range(n)]


def label_tokens(n_attributes: int) -> list[str]:
    """Three labels per attribute, attribute-major: `<attr_a_0>` (<), `<attr_a_1>` (=), `<attr_a_2>` (>)."""
    return [f"<attr_{a}_{c}>" for a in range(n_attributes) for c in range(3)]


@dataclass(frozen=True)
class Layout:
    """A vocabulary built from named token groups; `ids(group, i)` maps group-local indices to token ids."""

    vocab: Vocab
    offsets: dict[str, int]

    def ids(self, group: str, index: np.ndarray | int) -> np.ndarray:
        return np.asarray(index, dtype=np.int64) + self.offsets[group]


def build_layout(groups: dict[str, list[str]]) -> Layout:
    """`<pad>` (id 0) followed by each group in order."""
    tokens, offsets = [PAD], {}
    for name, group in groups.items():
        offsets[name] = len(tokens)
        tokens.extend(group)
    return Layout(vocab=Vocab(tuple(tokens)), offsets=offsets)
