"""Prompts in the paper's style (Wang et al. 2024 §5) from a groklab dataset: the training facts rendered as
sentences about named entities, a question, and an answer line that can be parsed strictly.

    groklab llm-prompts runs/cx --out cx.jsonl                              # all facts of the query's attribute
    groklab llm-prompts runs/cx --out cx-r.jsonl --context retrieve --k 20  # the 20 facts BM25 ranks highest
    groklab llm-prompts runs/cx --out cx-cot.jsonl --cot                    # with a chain-of-thought instruction
    groklab llm-prompts runs/cx --out cx-3.jsonl --context none --shots 3   # 3 solved training questions first
    groklab llm-prompts runs/cx --out raw.jsonl --style tokens --context none   # our own tokens: for an export

Contexts: `all` puts every training fact that can bear on the query in the prompt (composition: the whole
training set; comparison and complex: the facts of the query's attribute, since the others cannot matter);
`retrieve` the k that BM25 ranks highest for the question (retrieve.py); `none` no facts at all (a model
must answer from its weights). `--shots k` puts k solved questions of the query's shape (atomic, two-hop,
comparison), drawn from the training facts, before the question: the answer format shown, not only described
(a small model follows an example better than an instruction); a record with shots also carries `messages`, the
same prompt as a chat in which each shot is a user turn answered by an assistant turn (what the chat endpoint
sends: evaluation harnesses' few-shot as multi-turn). `--style tokens` writes the query in the task's
own tokens (`<e_3><r_1><r_7>`) and expects one token back: a groklab model exported with `groklab export` and
served by any OpenAI-compatible server then scores exactly what groklab's own evaluation says on the same queries.
One JSON object per line; `answer` is the expected reply, `candidates` every answer of its kind (all entity
names, all values, the label words: what the lenient reading in evaluate.py looks for) and, when the source is a
run, `grokked_correct` says whether the run's newest checkpoint answers the same query right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from groklab import runs
from groklab.errors import UserError
from groklab.llm.names import make_names
from groklab.tasks import TASKS as REGISTRY
from groklab.tasks.dataset import Split, TaskData

TASKS = tuple(name for name, spec in REGISTRY.items() if spec.facts)  # knowledge tasks: facts read as sentences
LABELS = ("lower", "equal", "higher")  # comparison label classes 0 (<), 1 (=), 2 (>), as knowledge.compare
UNDECIDED = "unknown"  # the paper's "cannot decide": counted apart, and wrong
GROUPS = {"e": "entity", "r": "relation", "attr": "attribute"}  # token spelling <e_12> -> its name group
TOKEN = re.compile(r"<(e|r|attr)_(\d+)>")
VALUE = re.compile(r"<(\d+)>")
LABEL = re.compile(r"<attr_\d+_([012])>")
MAX_TOKENS = {"tokens": 1, "direct": 32, "cot": 2048}  # reply budget per style: one token, one line, reasoning
FORM = {"entity": "the name", "value": "the number", "label": f"one word: {', '.join(LABELS)}, or {UNDECIDED} if the "
        "facts do not decide it"}
# "ANSWER: followed by ...", not "ANSWER: <the name>": a 135M model copies the placeholder "<the name>" literally
DIRECT = "Reply with one line and nothing else: ANSWER: followed by {form}."
COT = "Think step by step, then end your reply with a last line: ANSWER: followed by {form}."


@dataclass(frozen=True)
class PromptConfig:
    """What `groklab llm-prompts` renders: which queries (`split`, `limit`, `seed`) and how."""

    split: str | None = None  # probe split of the queries (default: the task's grok probe, else its ID test)
    context: Literal["all", "retrieve", "none"] = "all"
    k: int = 20  # facts retrieved per query (context="retrieve")
    cot: bool = False  # ask for step-by-step reasoning before the answer line
    style: Literal["text", "tokens"] = "text"  # named sentences for LLMs, or the task's own tokens
    limit: int = 0  # queries: a seeded random subset of this many (0 = the whole split)
    seed: int = 0  # the names, the subset and the shots
    shots: int = 0  # solved training questions of the query's shape shown before it (k-shot)
    max_tokens: int = 0  # reply budget (0 = the style's default, MAX_TOKENS)

    def validate(self) -> None:
        if self.k < 1:
            raise UserError(f"--k {self.k} must be >= 1")
        if self.limit < 0:
            raise UserError(f"--limit {self.limit} must be >= 0 (0 = every query of the split)")
        if self.shots < 0 or self.max_tokens < 0:
            raise UserError(f"--shots {self.shots} and --max-tokens {self.max_tokens} must be >= 0")
        if self.style == "tokens" and (self.context != "none" or self.cot or self.shots):
            raise UserError(
                "--style tokens writes a bare query for a groklab model, which reads no facts and no instructions; "
                "use it with --context none, without --cot and --shots"
            )


@dataclass(frozen=True)
class Names:
    """Token id -> readable name, for every entity, relation and attribute of the vocabulary; values and labels
    are spelled out (numbers, LABELS)."""

    of: dict[int, str]

    @classmethod
    def build(cls, data: TaskData, seed: int) -> Names:
        found = [(i, TOKEN.fullmatch(t)) for i, t in enumerate(data.vocab.tokens)]
        by_group: dict[str, list[tuple[int, int]]] = {}
        for i, m in found:
            if m:
                by_group.setdefault(GROUPS[m.group(1)], []).append((int(m.group(2)), i))
        rng = np.random.default_rng([seed, 1])
        names = make_names(rng, {g: len(v) for g, v in by_group.items()})
        return cls({tid: names[g][k] for g, rows in by_group.items() for k, (_, tid) in enumerate(sorted(rows))})

    def __call__(self, token_id: int) -> str:
        return self.of[int(token_id)]


def spelled(data: TaskData, token_id: int, names: Names) -> str:
    """An answer token as a reply spells it: a name, a number or a label word."""
    token = data.vocab.tokens[int(token_id)]
    if m := LABEL.fullmatch(token):
        return LABELS[int(m.group(1))]
    if m := VALUE.fullmatch(token):
        return m.group(1)
    return names(token_id)


def sentence(data: TaskData, split: Split, row: int, names: Names, question: bool = False) -> str:
    """One fact of `split` as a sentence ("The brail of Kotha is Dreamo."), or as a question about its answer."""
    f = {k: int(v[row]) for k, v in split.fields.items()}
    if REGISTRY[data.task].facts == "chain":
        subject = f"the {names(f['r1'])} of {names(f['head'])}"
        if f["r2"] >= 0:
            subject = f"the {names(f['r2'])} of {subject}"
        if question:
            return f"What is {subject}?"
        return f"{subject[0].upper()}{subject[1:]} is {spelled(data, f['answer'], names)}."
    attr = names(f["attribute"])
    if f["e1"] < 0:  # an atomic fact: an entity's value
        return f"What is the {attr} of {names(f['entity'])}?" if question else \
            f"The {attr} of {names(f['entity'])} is {spelled(data, f['answer'], names)}."
    one, two = f"the {attr} of {names(f['e1'])}", f"the {attr} of {names(f['e2'])}"
    if question:
        return f"Is {one} lower than, equal to, or higher than {two}?"
    relation = {"lower": "lower than", "equal": "equal to", "higher": "higher than"}[spelled(data, f["answer"], names)]
    return f"The {one[4:]} is {relation} {two}."


def shape(split: Split, row: int) -> str:
    """What a fact needs: one atomic fact, two hops, or two values compared."""
    fields = split.fields
    if "r2" in fields:
        return "two-hop" if fields["r2"][row] >= 0 else "atomic"
    return "comparison" if fields["e1"][row] >= 0 else "atomic"


def draw_shots(data: TaskData, n_queries: int, query_shapes: list[str], names: Names,
               cfg: PromptConfig) -> list[list[tuple[str, str]]]:
    """cfg.shots (question, answer) pairs per query, drawn (seeded) from the training facts of the query's shape:
    never a test query, since the splits are disjoint from the training set."""
    if cfg.shots == 0:
        return [[] for _ in range(n_queries)]
    train = data.train
    by_shape: dict[str, np.ndarray] = {}
    for s in set(query_shapes):
        by_shape[s] = np.flatnonzero([shape(train, i) == s for i in range(len(train))])
        if len(by_shape[s]) < cfg.shots:
            raise UserError(f"--shots {cfg.shots}: the training set has only {len(by_shape[s])} {s} facts")
    rng = np.random.default_rng([cfg.seed, 3])
    out = []
    for s in query_shapes:
        rows = rng.choice(by_shape[s], size=cfg.shots, replace=False)
        out.append([(sentence(data, train, int(i), names, question=True),
                     spelled(data, train.answers[int(i)], names)) for i in rows])
    return out


def chat(question: str, facts: list[str], kind: str, cot: bool, shots: list[tuple[str, str]]) -> list[dict]:
    """The prompt as a conversation: each shot a user question answered by the assistant, then the query."""
    instruction = (COT if cot else DIRECT).format(form=FORM[kind])
    turns = []
    for q, a in shots:
        turns += [{"role": "user", "content": f"Question: {q}\n{instruction}"},
                  {"role": "assistant", "content": f"ANSWER: {a}"}]
    return [*turns, {"role": "user", "content": text_prompt(question, facts, kind, cot)}]


def candidates(data: TaskData, kind: str, names: Names) -> list[str]:
    """Every answer a reply of this kind could give: all entity names, all values, or the label words."""
    if kind == "label":
        return [*LABELS, UNDECIDED]
    pattern = VALUE if kind == "value" else re.compile(r"<e_\d+>")
    return [spelled(data, i, names) for i, t in enumerate(data.vocab.tokens) if pattern.fullmatch(t)]


def answer_kind(data: TaskData, split: Split, row: int) -> str:
    token = data.vocab.tokens[int(split.answers[row])]
    return "label" if LABEL.fullmatch(token) else "value" if VALUE.fullmatch(token) else "entity"


def query_split(data: TaskData, name: str | None) -> str:
    name = name or data.roles.get("grok") or data.roles["test_id"]
    if name not in data.probes:
        raise UserError(f"--split {name!r} is not a split of this {data.task} data; use {', '.join(data.probes)}")
    return name


def pick_rows(n: int, cfg: PromptConfig) -> np.ndarray:
    if cfg.limit == 0 or cfg.limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([cfg.seed, 2]).choice(n, size=cfg.limit, replace=False))


def contexts(data: TaskData, split: Split, rows: np.ndarray, questions: list[str], names: Names,
             cfg: PromptConfig) -> list[list[str]]:
    """The facts in each query's prompt: none, all that bear on it, or the k that BM25 ranks highest."""
    if cfg.context == "none":
        return [[] for _ in rows]
    train = data.train
    facts = [sentence(data, train, i, names) for i in range(len(train))]
    if cfg.context == "retrieve":
        from groklab.llm.retrieve import top_k

        return [[facts[i] for i in hits] for hits in top_k(facts, questions, cfg.k)]
    if REGISTRY[data.task].facts == "chain":
        return [facts for _ in rows]
    by_attr: dict[int, list[str]] = {}
    for i, a in enumerate(train.fields["attribute"].tolist()):
        by_attr.setdefault(a, []).append(facts[i])
    return [by_attr.get(int(split.fields["attribute"][r]), []) for r in rows]


def text_prompt(question: str, facts: list[str], kind: str, cot: bool, shots: list[tuple[str, str]] = ()) -> str:
    instruction = (COT if cot else DIRECT).format(form=FORM[kind])
    solved = "".join(f"Question: {q}\nANSWER: {a}\n\n" for q, a in shots)
    if shots:
        solved = f"Examples of questions and their answers:\n\n{solved}"
    if not facts:
        return f"{solved}Question: {question}\n{instruction}"
    listed = "\n".join(f"- {fact}" for fact in facts)
    return (f"Answer the question using the facts below. The names are made up, so rely on the facts only.\n\n"
            f"Facts:\n{listed}\n\n{solved}Question: {question}\n{instruction}")


def render(data: TaskData, cfg: PromptConfig, source: Path, grokked: dict | None = None) -> Iterator[dict]:
    """One prompt record per query. `grokked`: {"step", "predicted": token ids per query} from the run's model."""
    cfg.validate()
    if data.task not in TASKS:
        raise UserError(f"llm prompts exist for {', '.join(TASKS)}; this data is {data.task!r}")
    split_name = query_split(data, cfg.split)
    split = data.probes[split_name]
    rows = pick_rows(len(split), cfg)
    names = Names.build(data, cfg.seed)
    questions = [sentence(data, split, int(r), names, question=True) for r in rows]
    facts = contexts(data, split, rows, questions, names, cfg)
    shots = draw_shots(data, len(rows), [shape(split, int(r)) for r in rows], names, cfg)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("split", "max_tokens")}
    settings["k"] = cfg.k if cfg.context == "retrieve" else None  # k means nothing without retrieval
    known: dict[str, list[str] | None] = {}
    for j, r in enumerate(rows.tolist()):
        answer_id = int(split.answers[r])
        if cfg.style == "tokens":
            prompt = "".join(data.vocab.tokens[t] for t in split.tokens[r, : split.lengths[r]])
            kind, answer, max_tokens = "token", data.vocab.tokens[answer_id], MAX_TOKENS["tokens"]
        else:
            kind = answer_kind(data, split, r)
            prompt = text_prompt(questions[j], facts[j], kind, cfg.cot, shots[j])
            answer, max_tokens = spelled(data, answer_id, names), MAX_TOKENS["cot" if cfg.cot else "direct"]
        if kind not in known:  # tokens style: no lenient reading (a groklab model answers in one token)
            known[kind] = None if kind == "token" else candidates(data, kind, names)
        record = {"id": f"{split_name}/{r}", "task": data.task, "split": split_name, "row": r, "prompt": prompt,
                  "answer": answer, "answer_kind": kind, "max_tokens": cfg.max_tokens or max_tokens,
                  "n_facts": len(facts[j]), "source": str(source), "candidates": known[kind]} | settings
        if shots[j]:
            record["messages"] = chat(questions[j], facts[j], kind, cfg.cot, shots[j])
        if grokked is not None:
            predicted = int(grokked["predicted"][j])
            record |= {"run_dir": str(source), "grokked_step": grokked["step"],
                       "grokked_answer": data.vocab.tokens[predicted], "grokked_correct": predicted == answer_id}
        yield record


def load_source(path: Path) -> tuple[TaskData, bool]:
    """A run folder (its data, regenerated or read as it trained) or a dataset folder; True for a run."""
    if runs.is_run(path):
        return runs.open_run(path)[1], True
    from groklab.tasks.io import load_dataset

    return load_dataset(path), False


def write_prompts(source: Path, out: Path, cfg: PromptConfig) -> tuple[int, dict]:
    """Render every prompt of `source` into the JSONL file `out` (atomically); returns (count, first record)."""
    cfg.validate()
    data, is_run = load_source(source)
    grokked = None
    if is_run and data.task in TASKS:
        from groklab.llm.grokked import predict

        split_name = query_split(data, cfg.split)
        rows = pick_rows(len(data.probes[split_name]), cfg)
        grokked = predict(source, data, data.probes[split_name].take(rows))
    records = list(render(data, cfg, source, grokked))
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return len(records), records[0] if records else {}
