"""Score an OpenAI-compatible model on a prompts file (prompts.py) and write `llm-eval.json`: its accuracy beside
the grokked model's on the same queries.

    groklab llm-eval cx.jsonl --base-url https://api.openai.com/v1 --model gpt-4-turbo --api-key-env OPENAI_API_KEY
    groklab llm-eval raw.jsonl --base-url http://127.0.0.1:8000/v1 --model exports/cx   # tokens style: completions

Two readings of every reply, both reported. *Strict*: the reply's last non-empty line must be `ANSWER: <answer>`
(one of the label words for a comparison, one word for a name or number; markdown emphasis and a final period
are tolerated), and a tokens-style reply must be exactly one `<token>`. *Lenient*, as evaluation harnesses'
answer filters read a free-form reply: the last word of the reply that is a known answer of the query's kind
(an entity name of the knowledge base, a value, a label word: the prompt's `candidates`), wherever it stands;
a small model answers "The brail of Kotha is Dreamo." and the lenient reading takes Dreamo. Strict shows
whether a model follows the format, lenient what it knows. A reply with no answer is *unparseable*, counted
apart from wrong answers; `unknown` (the paper's "cannot decide") is counted apart too. Both count as not
correct, so accuracy is correct / all queries, as groklab's own evaluation divides.

Before anything is sent, each prompt's length in tokens (the model folder's own tokenizer and chat template,
when --model is a local folder) plus its reply budget is checked against the model's context window: prompts
that do not fit stop the evaluation with one line that says which, never with a server's bare HTTP 400.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from groklab import runs
from groklab.errors import UserError
from groklab.llm.client import AnswerCache, Client, EndpointConfig, Reply, ask_all, cache_key
from groklab.llm.prompts import LABELS, UNDECIDED
from groklab.llm.window import Window, check_fit

ANSWER_LINE = re.compile(r"answer\s*:\s*(.+)", re.IGNORECASE)
WORD = re.compile(r"[\w'-]+")
ONE_TOKEN = re.compile(r"<[^<>\s]+>")
OUTCOMES = ("correct", "wrong", "undecided", "unparseable")
SETTINGS = ("task", "split", "context", "k", "cot", "style", "seed", "limit", "shots")


def parse(text: str, record: dict) -> str | None:
    """The answer a reply gives, or None when the reply breaks the format."""
    if record["answer_kind"] == "token":
        token = text.strip()
        return token if ONE_TOKEN.fullmatch(token) else None
    lines = [line.strip().strip("*_`").strip() for line in text.splitlines() if line.strip()]
    match = ANSWER_LINE.fullmatch(lines[-1]) if lines else None
    if not match:
        return None
    value = match.group(1).strip().strip("*_`\"'<>").rstrip(".").strip()
    if record["answer_kind"] == "label":
        return value.lower() if value.lower() in (*LABELS, UNDECIDED) else None
    return value if WORD.fullmatch(value) else None


def parse_lenient(text: str, record: dict) -> str | None:
    """The last word of the reply that is a known answer of the query's kind (`candidates`), or None."""
    known = record.get("candidates")
    if record["answer_kind"] == "token" or not known:
        return parse(text, record)
    by_word = {c.lower(): c for c in known}
    for word in reversed(WORD.findall(text)):
        if word.lower() in by_word:
            return by_word[word.lower()]
    return None


READINGS = {"strict": parse, "lenient": parse_lenient}


def outcome(text: str, record: dict, reading: str = "strict") -> str:
    answer = READINGS[reading](text, record)
    if answer is None:
        return "unparseable"
    if answer == UNDECIDED and record["answer_kind"] == "label":
        return "undecided"
    if record["answer_kind"] != "token":  # names and words: case does not matter; tokens: exact
        answer, expected = answer.lower(), record["answer"].lower()
    else:
        expected = record["answer"]
    return "correct" if answer == expected else "wrong"


def read_prompts(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: no such prompts file; write one with `groklab llm-prompts RUN_OR_DATA --out {path}`")
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except ValueError as exc:
        raise UserError(f"{path} is not a JSONL prompts file ({exc}); write it with `groklab llm-prompts`") from None
    need = {"id", "prompt", "answer", "answer_kind", "max_tokens"}
    if not records or any(not isinstance(r, dict) or need - r.keys() for r in records):
        raise UserError(f"{path}: every line needs {', '.join(sorted(need))}; write it with `groklab llm-prompts`")
    return records


def count(records: list[dict], replies: dict[str, Reply], reading: str) -> dict:
    counts = dict.fromkeys(OUTCOMES, 0)
    for r in records:
        counts[outcome(replies[r["id"]].text, r, reading)] += 1
    return {**counts, "accuracy": counts["correct"] / len(records)}


def score(records: list[dict], replies: dict[str, Reply]) -> dict:
    """Counts of each outcome and accuracy by the strict reading (top level) and the lenient one ("lenient"),
    and the grokked model's accuracy on the same queries (if known)."""
    n = len(records)
    grokked = None
    if all(r.get("grokked_correct") is not None for r in records):
        steps = sorted({r["grokked_step"] for r in records})
        grokked = {"accuracy": sum(bool(r["grokked_correct"]) for r in records) / n, "step": steps[-1],
                   "run_dir": records[0].get("run_dir")}
    return {"n": n, **count(records, replies, "strict"), "lenient": count(records, replies, "lenient"),
            "grokked": grokked}


def usage(replies: dict[str, Reply], price_in: float | None, price_out: float | None) -> dict:
    """Token counts as the server reported them (None where it did not) and the cost at the given prices."""
    def total(name: str) -> int | None:
        values = [getattr(r, name) for r in replies.values()]
        return None if any(v is None for v in values) else sum(values)

    tokens = {"prompt": total("prompt_tokens"), "completion": total("completion_tokens")}
    cost = None
    if price_in is not None and price_out is not None and None not in tokens.values():
        cost = round((tokens["prompt"] * price_in + tokens["completion"] * price_out) / 1e6, 6)
    return {"tokens": tokens, "cost_usd": cost}


def out_dir_for(records: list[dict], prompts: Path, out: Path | None) -> Path:
    """--out, else the run the prompts came from (so its report shows the LLM), else beside the prompts file."""
    if out is not None:
        return out
    run = records[0].get("run_dir")
    return Path(run) if run and runs.is_run(Path(run)) else prompts.parent


def record_evaluation(out_dir: Path, entry: dict) -> Path:
    """Add `entry` to out_dir/llm-eval.json, replacing an earlier evaluation of the same model and prompts."""
    path = out_dir / runs.LLM_EVAL
    old = runs.read_json(path)["evaluations"] if path.is_file() else []
    kept = [e for e in old if (e["model"], e["prompts"]) != (entry["model"], entry["prompts"])]
    out_dir.mkdir(parents=True, exist_ok=True)
    return runs.write_json(path, {"evaluations": [*kept, entry]})


def window_for(cfg: EndpointConfig, tokenizer: Path | None, tokens: int | None) -> Window | None:
    """The model's window: from --tokenizer or the --model folder (a local model); unknown for a remote API."""
    folder = tokenizer or (Path(cfg.model) if Path(cfg.model).is_dir() else None)
    if folder is None:
        if tokens:
            raise UserError(f"--context-window {tokens} needs the model's tokenizer to count prompts: --tokenizer DIR")
        return None
    return Window.of(folder, cfg.endpoint == "chat", tokens)


def evaluate(prompts: Path, cfg: EndpointConfig, out: Path | None = None, cache: Path | None = None,
             price_in: float | None = None, price_out: float | None = None, progress: bool = True,
             tokenizer: Path | None = None, context_window: int | None = None) -> tuple[Path, dict]:
    """Check every prompt fits, ask it (cached answers are reused), score, write llm-eval.json; returns its path
    and the entry."""
    records = read_prompts(prompts)
    check_fit(records, window_for(cfg, tokenizer, context_window), cfg.model)
    cache_file = AnswerCache(cache or prompts.with_name(prompts.stem + ".answers.jsonl"))
    client = Client(cfg)
    tic = time.perf_counter()
    cached = sum(cache_key(cfg, r) in cache_file.replies for r in records)
    replies = ask_all(client, records, cache_file, progress)
    entry = {"model": cfg.model, "base_url": cfg.base_url, "endpoint": cfg.endpoint, "prompts": str(prompts.resolve()),
             "cache": str(cache_file.path.resolve()), **{k: records[0].get(k) for k in SETTINGS},
             **score(records, replies), **usage(replies, price_in, price_out), "asked": len(records) - cached,
             "cached": cached, "retries": client.retried, "elapsed_s": round(time.perf_counter() - tic, 2),
             "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return record_evaluation(out_dir_for(records, prompts, out), entry), entry


def format_entry(e: dict) -> str:
    """The terminal summary of one evaluation."""
    grokked = e["grokked"]
    beside = f"   grokked model (step {grokked['step']}): {grokked['accuracy']:.3f}" if grokked else ""
    tokens = e["tokens"]
    spent = "tokens not reported" if None in tokens.values() else f"{tokens['prompt']:,} prompt + " \
        f"{tokens['completion']:,} completion tokens"
    cost = f", ${e['cost_usd']:.4f}" if e["cost_usd"] is not None else ""
    setting = e["context"] + ("" if e["k"] is None else f", k {e['k']}") + (", CoT" if e["cot"] else "")
    setting += f", {e['shots']}-shot" if e.get("shots") else ""
    lenient = e.get("lenient") or e
    return "\n".join([
        f"{e['model']} on {e['task']} {e['split']} ({setting}, {e['style']}): "
        f"accuracy {e['accuracy']:.3f} ({e['correct']}/{e['n']}) strict, {lenient['accuracy']:.3f} "
        f"({lenient['correct']}/{e['n']}) lenient{beside}",
        f"  strict: wrong {e['wrong']}, undecided {e['undecided']}, unparseable {e['unparseable']};  lenient: wrong "
        f"{lenient['wrong']}, undecided {lenient['undecided']}, unparseable {lenient['unparseable']}",
        f"  asked {e['asked']}, from cache {e['cached']}, retries {e['retries']}, {spent}{cost}, {e['elapsed_s']:.1f}s",
    ])
