"""Ask any OpenAI-compatible server (OpenAI, Gemini's OpenAI endpoint, vLLM, `transformers serve` ...) through
the `openai` package: prompts in parallel threads, retries with exponential back-off on what is transient
(dropped connections, timeouts, 429, 5xx), one UserError that names the fix for what is not (refused
connection before any answer, 401, 404, malformed JSON), and an append-only answer cache so that an
interrupted evaluation continues without asking again.

The API key is read from the environment variable the user names (`--api-key-env`) and handed to the client
only: it is never written to the cache, `llm-eval.json` or a log. No variable named: no key is sent (a local
server), so a key meant for one provider never reaches another server by default.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from groklab.errors import UserError

NO_KEY = "EMPTY"  # what the openai client sends when no key is needed (a local server)


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to ask. `endpoint`: chat completions (LLMs) or legacy text completions (a raw prompt, no
    chat template: what an exported groklab model needs)."""

    base_url: str
    model: str
    endpoint: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = None  # the NAME of the variable holding the key, never the key
    concurrency: int = 4
    retries: int = 4  # extra attempts after a transient failure
    backoff_s: float = 1.0  # wait before retry i: backoff_s * 2**i
    timeout_s: float = 600.0
    temperature: float = 0.0  # greedy: the answer is a property of the model, not of a draw

    def validate(self) -> None:
        if self.concurrency < 1 or self.retries < 0:
            raise UserError(f"--concurrency {self.concurrency} must be >= 1 and --retries {self.retries} >= 0")
        if not self.base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {self.base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def cache_key(cfg: EndpointConfig, record: dict) -> str:
    """Same server, model, endpoint, prompt and generation settings → the same answer: ask once. The server is
    part of the key: two providers may serve different weights under one model name."""
    what = [cfg.base_url.rstrip("/"), cfg.model, cfg.endpoint, cfg.temperature, record["max_tokens"], record["prompt"]]
    if cfg.endpoint == "chat" and record.get("messages"):
        what.append(record["messages"])  # k-shot as turns: the conversation is what is asked
    return hashlib.sha256(json.dumps(what, ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    """One JSON line per answered prompt, appended and flushed as each answer arrives (a kill loses at most the
    line being written, which the next load ignores)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: dict[str, Reply] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    reply = Reply(row["text"], row.get("prompt_tokens"), row.get("completion_tokens"))
                    self.replies[row["key"]] = reply
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line of an interrupted run
        self.lock = threading.Lock()

    def put(self, key: str, model: str, reply: Reply) -> None:
        row = {"key": key, "model": model, "text": reply.text, "prompt_tokens": reply.prompt_tokens,
               "completion_tokens": reply.completion_tokens}
        with self.lock:
            self.replies[key] = reply
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def require_openai():
    try:
        import openai
    except ImportError:
        raise UserError("groklab llm-eval needs the openai package; install it: pip install 'groklab[llm]'") from None
    return openai


class Client:
    """One endpoint; `ask` is safe to call from several threads (the openai client is)."""

    def __init__(self, cfg: EndpointConfig) -> None:
        cfg.validate()
        self.cfg, self.openai = cfg, require_openai()
        key = NO_KEY
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env, "")
            if not key:
                raise UserError(f"--api-key-env {cfg.api_key_env}: that variable is not set; export it with your key, "
                                "or leave --api-key-env out for a server that needs no key")
        self.api = self.openai.OpenAI(base_url=cfg.base_url, api_key=key, max_retries=0, timeout=cfg.timeout_s)
        self.answered = threading.Event()  # a refused connection after this is transient, before it a wrong URL
        self.retried = 0

    def request(self, record: dict) -> Reply:
        cfg = self.cfg
        limit = {"max_tokens": record["max_tokens"], "temperature": cfg.temperature}
        if cfg.endpoint == "chat":
            messages = record.get("messages") or [{"role": "user", "content": record["prompt"]}]
            r = self.api.chat.completions.create(model=cfg.model, messages=messages, **limit)
        else:
            r = self.api.completions.create(model=cfg.model, prompt=record["prompt"], **limit)
        try:  # the client does not validate replies: a server's odd JSON shows up here
            choice = r.choices[0]
            text = choice.message.content if cfg.endpoint == "chat" else choice.text
        except (AttributeError, IndexError, TypeError, KeyError):
            raise ValueError(f"no choices[0] in the reply {str(r)[:120]!r}") from None
        if text is not None and not isinstance(text, str):
            raise ValueError(f"choices[0] holds {type(text).__name__}, not text")
        usage = getattr(r, "usage", None)
        return Reply(text or "", getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))

    def ask(self, record: dict) -> Reply:
        for attempt in range(self.cfg.retries + 1):
            try:
                reply = self.request(record)
                self.answered.set()
                return reply
            except (self.openai.OpenAIError, ValueError) as exc:  # anything else is a bug: let it surface
                problem = self.fatal(exc)
                if problem is not None:
                    raise problem from None
                if attempt == self.cfg.retries:
                    raise UserError(f"{self.cfg.base_url} kept failing ({describe(exc)}) after {self.cfg.retries} "
                                    "retries; check the server's log, or raise --retries") from None
                self.retried += 1
                time.sleep(self.cfg.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def fatal(self, exc: Exception) -> UserError | None:
        """The one-line error for a failure no retry can fix; None for a transient one."""
        o, url, model = self.openai, self.cfg.base_url, self.cfg.model
        if isinstance(exc, o.APIConnectionError):
            refused = type(exc.__cause__).__name__ == "ConnectError" and not self.answered.is_set()
            return UserError(f"cannot connect to {url} ({describe(exc)}); start the server there or fix --base-url") \
                if refused else None
        if isinstance(exc, o.AuthenticationError | o.PermissionDeniedError):
            fix = (f"check the key in ${self.cfg.api_key_env}" if self.cfg.api_key_env else
                   "name the variable that holds your key with --api-key-env VAR")
            return UserError(f"{url} refused the request ({exc.status_code}: the API key is missing or wrong); {fix}")
        if isinstance(exc, o.NotFoundError):
            return UserError(f"{url} answered 404 for model {model!r}; check --base-url (usually ending in /v1), "
                             "--model, and --endpoint (chat or completions)")
        if isinstance(exc, o.RateLimitError | o.InternalServerError):
            return None
        if isinstance(exc, o.APIStatusError):
            return UserError(f"{url} rejected the request ({exc.status_code}: {describe(exc)}); check --model, "
                             "--endpoint (a model without a chat template needs --endpoint completions) and that the "
                             "prompts fit the model's context window (--tokenizer, --context-window)")
        if isinstance(exc, ValueError | o.APIResponseValidationError):
            return UserError(f"{url} answered with malformed JSON ({describe(exc)}); is --base-url an "
                             "OpenAI-compatible API root such as http://127.0.0.1:8000/v1?")
        return UserError(f"asking {url} failed ({describe(exc)}); check --base-url and the server")  # other OpenAIError


def describe(exc: Exception) -> str:
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"{type(exc).__name__}{cause} {str(exc)[:200]}".strip()


def ask_all(client: Client, records: list[dict], cache: AnswerCache, progress: bool = True) -> dict[str, Reply]:
    """Every record's reply by id: cached ones as they are, the rest asked `concurrency` at a time. A fatal
    error stops the queue (answers already in are kept in the cache) and is raised."""
    from tqdm.auto import tqdm

    keys = {r["id"]: cache_key(client.cfg, r) for r in records}
    todo = [r for r in records if keys[r["id"]] not in cache.replies]
    bar = tqdm(total=len(todo), desc=f"asking {client.cfg.model}", unit="prompt", disable=not progress)

    def one(record: dict) -> None:
        cache.put(keys[record["id"]], client.cfg.model, client.ask(record))
        bar.update(1)

    pool = ThreadPoolExecutor(max_workers=client.cfg.concurrency)
    try:
        futures = [pool.submit(one, r) for r in todo]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            raise failed[0].exception()
    finally:  # an error or Ctrl-C: drop the queued prompts (a `with` block would still ask, and pay for, them all)
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return {rid: cache.replies[key] for rid, key in keys.items()}
