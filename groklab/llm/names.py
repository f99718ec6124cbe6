"""Readable random names for the knowledge base's entities, relations and attributes, made here from syllables
with a seeded generator (no name list to download). The paper gave its entities random names too, so that a
language model cannot answer from what it already knows about real people or words.
"""

from __future__ import annotations

import numpy as np

ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "pr",
          "sh", "st", "th", "tr")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
CODAS = ("", "", "", "l", "m", "n", "r", "s", "th", "x")
# words a name must never be: the answer words (evaluate.LABELS) and the connecting words of every sentence
RESERVED = frozenset({"lower", "equal", "higher", "unknown", "the", "of", "is", "than", "to", "what", "answer"})


def syllable(rng: np.random.Generator) -> str:
    return ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))] + CODAS[rng.integers(len(CODAS))]


def make_names(rng: np.random.Generator, counts: dict[str, int], taken: set[str] | None = None) -> dict[str, list[str]]:
    """`counts[group]` distinct names per group, distinct across all groups too (one name, one meaning: the
    retriever and the answer parser match names as words). Entities are capitalised; the other groups are
    lower-case nouns ("the brail of Kotha"). Deterministic in `rng`."""
    used = set(RESERVED) | (taken or set())
    out: dict[str, list[str]] = {}
    for group, n in counts.items():
        names: list[str] = []
        while len(names) < n:
            syllables = 2 + int(rng.random() < 0.35)  # ~4.7M two-syllable words: never short
            word = "".join(syllable(rng) for _ in range(syllables))
            if word not in used:
                used.add(word)
                names.append(word.capitalize() if group == "entity" else word)
        out[group] = names
    return out
