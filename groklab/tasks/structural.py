"""Structural grokking (Murty et al. 2023, arXiv 2305.18741) on McCoy et al.'s (2020) English fragment:
question formation and tense inflection, generated from a seeded grammar (`grammar.py`).

Each task has a hierarchical rule and a linear rule that agree on simple sentences. As in McCoy and Murty,
training holds an identity example ("decl" / "past") of every training sentence, and a transformed example
("quest" / "present") only of sentences where both rules give the same output. Probes:
  train  a sample of the training split (both kinds);
  test   transformed examples of held-out sentences where the rules agree (in distribution);
  gen    transformed examples of held-out sentences where the rules disagree on the decisive token — a
         relative clause on the subject (question formation), or a subject whose nearest following noun
         has the other number (tense inflection). Grokking is measured here.
The decisive token is the question's first word (the moved auxiliary; Murty's first-word accuracy) or the
main verb (tense inflection), predicted at `positions`; identity examples score the same output position.
Sentences are distinct and no held-out sentence appears in training, not even as an identity example.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from groklab.errors import UserError
from groklab.sizes import PYTHON_TOKEN_BYTES, DataSize
from groklab.tasks.dataset import TaskData
from groklab.tasks.grammar import (
    INTRANSITIVE,
    NOUNS,
    TRANSITIVE,
    Lexicon,
    Sentence,
    SentenceGenerator,
    hierarchical_present,
    hierarchical_question,
    linear_present,
    linear_question,
)
from groklab.tasks.knowledge import sample_probe, shuffled, split_sizes
from groklab.tasks.structural_split import EOS, ROLES, Draws, Example, LossMode, build_split, fill_buckets
from groklab.tasks.vocab import build_layout

MAX_DEPTH = 4  # modifiers nested deeper make sentences of 60+ tokens, past any CPU-sized context
SENTENCE_TOKENS = 12  # tokens of a sentence per level of nesting, about at most (17 at max_depth 1, 44 at 4)
MAX_DRAWS_PER_SENTENCE = 20  # draws allowed per sentence asked for before the grammar counts as too small
# agreement class of a sentence -> the buckets it may fill, in order of preference
ROUTES = {"agree": ("test", "train"), "gen": ("gen", "train"), "neither": ("train",)}

Rule = Callable[[Sentence, Lexicon], tuple[str, ...]]


@dataclass(frozen=True)
class Transformation:
    """A task: its two markers, sentence flavour, hierarchical and linear rules, and the decisive position."""

    identity: str  # marker of identity examples
    marker: str  # marker of transformed examples
    tense: bool  # past-tense sentences without auxiliaries
    hierarchical: Rule
    linear: Rule
    decisive: Callable[[Sentence], int]  # index of the decisive token in the output


TRANSFORMATIONS = {
    "question-formation": Transformation("decl", "quest", False, hierarchical_question, linear_question, lambda s: 0),
    "tense-inflection": Transformation("past", "present", True, hierarchical_present, linear_present, lambda s: s.main),
}


@dataclass(frozen=True)
class GrammarTaskConfig:
    """Shared settings of the two grammar tasks; defaults are CPU-sized (Murty et al. train on 100k)."""

    TASK: ClassVar[str] = ""
    task: str = ""
    seed: int = 0  # data seed: the generator's own numpy Generator (which sentences, which split)
    n_train: int = 2000  # training sentences: an identity example each, plus a transformed one if rules agree
    n_test: int = 500  # held-out sentences where the rules agree (ID test)
    n_gen: int = 500  # held-out sentences where the rules disagree on the decisive token (generalisation)
    n_nouns: int = len(NOUNS)  # vocabulary: the first n_nouns nouns (each singular and plural)
    n_verbs: int = min(len(INTRANSITIVE), len(TRANSITIVE))  # ... and n_verbs verbs of each transitivity
    max_depth: int = 1  # PP / RC nesting: 1 = modifiers' own NPs are bare (McCoy et al.'s fragment)
    loss_on: LossMode = "full"  # full: LM loss on the whole sequence (Murty et al.); output: only on the output
    probe_size: int = 500  # max examples per probe (0 = whole splits)

    def size(self) -> DataSize:
        """What `generate` builds (groklab/sizes.py): the sentences as Python objects, an identity and at most a
        transformed example per training sentence, one per held-out sentence, and the probes; a sequence is
        input, marker and output (each at most SENTENCE_TOKENS · (max_depth + 1) tokens) and the end token."""
        n_ctx = 2 * SENTENCE_TOKENS * (self.max_depth + 1) + 2
        sentences = self.n_train + self.n_test + self.n_gen
        return DataSize(rows=2 * self.n_train + self.n_test + self.n_gen + 3 * self.probe_size, n_ctx=n_ctx,
                        vocab=4 + len(Lexicon.sized(self.n_nouns, self.n_verbs).words()),  # <pad>, <eos>, markers
                        knobs=("data.n_train", "data.max_depth"), scratch=sentences * n_ctx * PYTHON_TOKEN_BYTES,
                        sequence=True)

    def validate(self) -> None:
        if self.task != self.TASK:
            raise UserError(f"data.task={self.task!r} does not match {type(self).__name__}; use {self.TASK!r}")
        for name in ("n_train", "n_test"):
            if getattr(self, name) < 1:
                raise UserError(f"data.{name}={getattr(self, name)} must be >= 1")
        if self.n_gen < 0 or self.probe_size < 0:
            raise UserError(f"data.n_gen={self.n_gen} and data.probe_size={self.probe_size} must be >= 0")
        if not 1 <= self.n_nouns <= len(NOUNS):
            raise UserError(f"data.n_nouns={self.n_nouns} must be in 1..{len(NOUNS)}")
        limit = min(len(INTRANSITIVE), len(TRANSITIVE))
        if not 1 <= self.n_verbs <= limit:
            raise UserError(f"data.n_verbs={self.n_verbs} must be in 1..{limit}")
        if not 1 <= self.max_depth <= MAX_DEPTH:
            raise UserError(f"data.max_depth={self.max_depth} must be in 1..{MAX_DEPTH} (1 = McCoy's fragment)")


@dataclass(frozen=True)
class QuestionFormationConfig(GrammarTaskConfig):
    """Declarative -> yes/no question by fronting the main auxiliary (vs. the first one)."""

    TASK: ClassVar[str] = "question-formation"
    task: str = "question-formation"


@dataclass(frozen=True)
class TenseInflectionConfig(GrammarTaskConfig):
    """Past -> present tense, verbs agreeing with their subjects (vs. the most recent noun)."""

    TASK: ClassVar[str] = "tense-inflection"
    task: str = "tense-inflection"


def agreement_class(t: Transformation, s: Sentence, lexicon: Lexicon) -> str:
    """agree: both rules give the same output; gen: they differ on the decisive token; neither otherwise."""
    hierarchical, linear = t.hierarchical(s, lexicon), t.linear(s, lexicon)
    if hierarchical == linear:
        return "agree"
    return "gen" if hierarchical[t.decisive(s)] != linear[t.decisive(s)] else "neither"


def identity_example(t: Transformation, s: Sentence) -> Example:
    return Example(s.tokens, t.identity, s.tokens, t.decisive(s), None, s.spans, t.identity)


def transformed_example(t: Transformation, s: Sentence, lexicon: Lexicon) -> Example:
    output, linear, d = t.hierarchical(s, lexicon), t.linear(s, lexicon), t.decisive(s)
    return Example(s.tokens, t.marker, output, d, None if linear[d] == output[d] else linear[d], s.spans, t.marker)


def generate(cfg: GrammarTaskConfig) -> TaskData:
    """Sentences routed into train / test / gen, encoded as sequences; a pure function of `cfg`."""
    rng = np.random.default_rng(cfg.seed)
    t, lexicon = TRANSFORMATIONS[cfg.task], Lexicon.sized(cfg.n_nouns, cfg.n_verbs)
    generator, draws = SentenceGenerator(lexicon, cfg.max_depth, t.tense), Draws(rng)
    quotas = {"train": cfg.n_train, "test": cfg.n_test, "gen": cfg.n_gen}
    buckets = fill_buckets(
        lambda: generator.sentence(draws),
        lambda s: ROUTES[agreement_class(t, s, lexicon)],
        quotas,
        MAX_DRAWS_PER_SENTENCE * sum(quotas.values()),
        cfg.task,
        "raise data.n_nouns, data.n_verbs or data.max_depth",
    )
    layout = build_layout({"special": [EOS, t.identity, t.marker], "word": lexicon.words()})
    encode = lambda examples: build_split(examples, layout.vocab.index(), EOS, cfg.loss_on)  # noqa: E731
    agreeing = [s for s in buckets["train"] if agreement_class(t, s, lexicon) == "agree"]
    train_examples = [identity_example(t, s) for s in buckets["train"]]
    train = shuffled(rng, encode(train_examples + [transformed_example(t, s, lexicon) for s in agreeing]))
    held_out = {name: encode([transformed_example(t, s, lexicon) for s in buckets[name]]) for name in ("test", "gen")}
    probes = {
        "train_sample": sample_probe(rng, train, cfg.probe_size),
        **{name: sample_probe(rng, split, cfg.probe_size) for name, split in held_out.items()},
    }
    info = {
        "split_sizes": split_sizes(train, probes),
        "sentences": {name: len(b) for name, b in buckets.items()},
        "train_kinds": dict(sorted(Counter(train.kinds.tolist()).items())),
        "vocab_size": len(layout.vocab),
    }
    return TaskData(cfg.task, layout.vocab, train, probes, dict(ROLES), info)
