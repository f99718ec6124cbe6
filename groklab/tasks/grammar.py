"""The English fragment of McCoy, Frank & Linzen (2020, "Does syntax need to grow on trees?") and its two
transformations, each with a hierarchical and a linear rule.

    S    -> NP VP .                      NP -> Det N | Det N PP | Det N RC
    PP   -> P Det N                      RC -> Rel VP | Rel NP Aux V_trans   (subject / object gap)
    VP   -> Aux V_intr | Aux V_trans NP  (question formation; tense inflection drops Aux: V is past tense)

Aux agrees with its clause's subject (does/doesn't singular, do/don't plural). A PP or RC modifies at most
one NP level at a time; `max_depth` bounds how deep modifiers nest inside modifiers' NPs.

Binary trees: every rule above is binarized the linguist's way — NP = ((Det N) modifier),
PP = (P NP), RC = (Rel VP) or (Rel (NP (Aux V))), VP = (Aux V) or (Aux (V NP)), S = (NP VP), and the final
"." attaches last: root = (S .). A sentence of n tokens has n - 1 internal nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groklab.tasks.structural_split import Draws, Span, TreeBuilder

SINGULAR, PLURAL = 0, 1
DETERMINERS = ("the", "some", "my", "your", "our", "her")
NOUNS = (  # (singular, plural)
    ("newt", "newts"), ("orangutan", "orangutans"), ("peacock", "peacocks"), ("quail", "quails"),
    ("raven", "ravens"), ("salamander", "salamanders"), ("tyrannosaurus", "tyrannosauruses"),
    ("unicorn", "unicorns"), ("vulture", "vultures"), ("walrus", "walruses"), ("xylophone", "xylophones"),
    ("yak", "yaks"), ("zebra", "zebras"),
)  # fmt: skip
# (present plural = bare form, present singular, past); every form distinct, so tense is never ambiguous
INTRANSITIVE = (
    ("giggle", "giggles", "giggled"), ("smile", "smiles", "smiled"), ("sleep", "sleeps", "slept"),
    ("swim", "swims", "swam"), ("wait", "waits", "waited"), ("move", "moves", "moved"),
    ("change", "changes", "changed"), ("eat", "eats", "ate"), ("laugh", "laughs", "laughed"),
)  # fmt: skip
TRANSITIVE = (
    ("entertain", "entertains", "entertained"), ("amuse", "amuses", "amused"),
    ("high_five", "high_fives", "high_fived"), ("applaud", "applauds", "applauded"),
    ("confuse", "confuses", "confused"), ("admire", "admires", "admired"), ("accept", "accepts", "accepted"),
    ("remember", "remembers", "remembered"), ("comfort", "comforts", "comforted"),
)  # fmt: skip
PREPOSITIONS = ("around", "near", "with", "upon", "by", "behind", "above", "below")
RELATIVIZERS = ("who", "that")
AUXILIARIES = {SINGULAR: ("does", "doesn't"), PLURAL: ("do", "don't")}  # (positive, negative)
PRESENT_FORM = {PLURAL: 0, SINGULAR: 1}  # index into a verb's forms
PAST_FORM = 2
MODIFIERS = ("none", "pp", "rc")  # drawn uniformly for each NP that may still take a modifier
RC_GAPS = ("subject", "object")
TRANSITIVITY = ("intransitive", "transitive")
NUMBERS = (SINGULAR, PLURAL)
PERIOD, QUESTION_MARK = ".", "?"


@dataclass(frozen=True)
class Lexicon:
    """The words one config uses: the first n_nouns nouns and n_verbs verbs of each transitivity."""

    nouns: tuple[tuple[str, str], ...]
    intransitive: tuple[tuple[str, str, str], ...]
    transitive: tuple[tuple[str, str, str], ...]

    @classmethod
    def sized(cls, n_nouns: int, n_verbs: int) -> Lexicon:
        return cls(NOUNS[:n_nouns], INTRANSITIVE[:n_verbs], TRANSITIVE[:n_verbs])

    def words(self) -> list[str]:
        """Every token a sentence or its transformation can contain, in a fixed order."""
        verbs = [form for verb in self.intransitive + self.transitive for form in verb]
        nouns = [form for noun in self.nouns for form in noun]
        auxiliaries = [a for pair in AUXILIARIES.values() for a in pair]
        return [*DETERMINERS, *nouns, *verbs, *auxiliaries, *PREPOSITIONS, *RELATIVIZERS, PERIOD, QUESTION_MARK]

    def noun_number(self) -> dict[str, int]:
        return {form: number for noun in self.nouns for number, form in enumerate(noun)}

    def verb_forms(self) -> dict[str, tuple[str, str, str]]:
        """Any form of a verb -> all its forms."""
        return {form: verb for verb in self.intransitive + self.transitive for form in verb}


@dataclass(frozen=True)
class Sentence:
    """A generated declarative: tokens, gold binary tree, the main clause's auxiliary (question formation)
    or verb (tense inflection), and each verb's subject number (tense inflection's agreement)."""

    tokens: tuple[str, ...]
    spans: tuple[Span, ...]
    main: int
    agreement: tuple[tuple[int, int], ...] = ()  # (verb position, number of its subject)


class SentenceGenerator:
    """Draws sentences of the fragment. `tense=True` builds tense-inflection sentences: no auxiliaries, verbs
    in the past tense; otherwise question-formation sentences with agreeing auxiliaries."""

    def __init__(self, lexicon: Lexicon, max_depth: int, tense: bool) -> None:
        self.lexicon, self.max_depth, self.tense = lexicon, max_depth, tense

    def sentence(self, draws: Draws) -> Sentence:
        self.draws, self.b, self.agreement = draws, TreeBuilder(), []
        subject, number = self.noun_phrase(0)
        predicate, main = self.verb_phrase(number, 0)
        root = self.b.join(self.b.join(subject, predicate), self.b.leaf(PERIOD))
        assert root == (0, len(self.b.tokens) - 1)
        return Sentence(tuple(self.b.tokens), tuple(self.b.spans), main, tuple(self.agreement))

    def choose(self, options: tuple) -> Any:
        return options[self.draws.pick(len(options))]

    def noun_phrase(self, depth: int) -> tuple[Span, int]:
        """(span, number) of Det N, with a PP or RC if depth allows."""
        number = self.choose(NUMBERS)
        noun = self.choose(self.lexicon.nouns)[number]
        np = self.b.join(self.b.leaf(self.choose(DETERMINERS)), self.b.leaf(noun))
        modifier = self.choose(MODIFIERS) if depth < self.max_depth else "none"
        if modifier == "pp":
            preposition = self.b.leaf(self.choose(PREPOSITIONS))
            np = self.b.join(np, self.b.join(preposition, self.noun_phrase(depth + 1)[0]))
        elif modifier == "rc":
            np = self.b.join(np, self.relative_clause(number, depth + 1))
        return np, number

    def relative_clause(self, head_number: int, depth: int) -> Span:
        relativizer = self.b.leaf(self.choose(RELATIVIZERS))
        if self.choose(RC_GAPS) == "subject":  # who does see the yak: the head noun is the subject
            return self.b.join(relativizer, self.verb_phrase(head_number, depth)[0])
        subject, number = self.noun_phrase(depth)  # that the yak does see: the head noun is the object
        return self.b.join(relativizer, self.b.join(subject, self.verb_phrase(number, depth, gap=True)[0]))

    def verb_phrase(self, number: int, depth: int, gap: bool = False) -> tuple[Span, int]:
        """(span, position of the auxiliary, or of the verb in tense sentences). `gap`: a transitive verb
        whose object is the relative clause's head, so no object follows."""
        transitive = gap or self.choose(TRANSITIVITY) == "transitive"
        verb = self.choose(self.lexicon.transitive if transitive else self.lexicon.intransitive)
        aux = None if self.tense else self.b.leaf(self.choose(AUXILIARIES[number]))
        head = self.b.leaf(verb[PAST_FORM] if self.tense else verb[PRESENT_FORM[PLURAL]])  # bare after do
        if self.tense:
            self.agreement.append((head[0], number))
        position = head[0] if aux is None else aux[0]
        if transitive and not gap:
            head = self.b.join(head, self.noun_phrase(depth)[0])
        return (head if aux is None else self.b.join(aux, head)), position


# ---- the transformations: each a hierarchical rule and the linear rule that mimics it on simple sentences --


def front_auxiliary(tokens: tuple[str, ...], position: int) -> tuple[str, ...]:
    """The question made by moving the auxiliary at `position` to the front; "." becomes "?"."""
    rest = tokens[:position] + tokens[position + 1 : -1]
    return (tokens[position], *rest, QUESTION_MARK)


def hierarchical_question(s: Sentence, lexicon: Lexicon) -> tuple[str, ...]:
    """Move the main clause's auxiliary (McCoy et al.'s MOVE-MAIN)."""
    return front_auxiliary(s.tokens, s.main)


def linear_question(s: Sentence, lexicon: Lexicon) -> tuple[str, ...]:
    """Move the first auxiliary of the sentence (MOVE-FIRST)."""
    auxiliaries = {a for pair in AUXILIARIES.values() for a in pair}
    return front_auxiliary(s.tokens, next(i for i, t in enumerate(s.tokens) if t in auxiliaries))


def reinflect(s: Sentence, lexicon: Lexicon, numbers: dict[int, int]) -> tuple[str, ...]:
    """The sentence with every verb (at the keys of `numbers`) in the present tense of that number."""
    forms = lexicon.verb_forms()
    tokens = list(s.tokens)
    for position, number in numbers.items():
        tokens[position] = forms[tokens[position]][PRESENT_FORM[number]]
    return tuple(tokens)


def hierarchical_present(s: Sentence, lexicon: Lexicon) -> tuple[str, ...]:
    """Each verb agrees with its own subject (AGREE-SUBJECT)."""
    return reinflect(s, lexicon, dict(s.agreement))


def linear_present(s: Sentence, lexicon: Lexicon) -> tuple[str, ...]:
    """Each verb agrees with the most recent noun before it (AGREE-RECENT)."""
    number_of = lexicon.noun_number()
    numbers = {}
    for position, _ in s.agreement:
        recent = next(t for t in reversed(s.tokens[:position]) if t in number_of)
        numbers[position] = number_of[recent]
    return reinflect(s, lexicon, numbers)
