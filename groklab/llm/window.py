"""Does each prompt fit the model's context window? Checked before anything is sent, so that a prompt too long
for the model stops `llm-eval` with one line that names the prompts and the fix, not with a server's bare
HTTP 400 halfway through (SmolLM2's window is 8,192 tokens; the demo's prompt with all facts is ~364K).

Counted with the model's own tokenizer and chat template, when the model is a local folder (what `transformers
serve` serves). Cheap on huge prompts: a byte-level tokenizer makes at most one token per byte, so a prompt with
fewer bytes than the room left fits without tokenizing, and a longer one is tokenized only up to a prefix long
enough to overflow the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from groklab.errors import UserError
from groklab.llm.local import context_window

PREFIX_CHARS_PER_TOKEN = 16  # a prefix of 16 characters per token of room surely holds more tokens than the room


@dataclass(frozen=True)
class Window:
    """A model's context window and a way to count a prompt's tokens in it."""

    tokens: int
    tokenizer: object  # a transformers tokenizer
    chat: bool  # chat endpoint: the chat template's tokens count too
    overhead: int  # tokens the chat template adds around an empty message (and the generation prompt): per turn

    @classmethod
    def of(cls, folder: Path, chat: bool, tokens: int | None = None) -> Window | None:
        """From a local model folder (config.json and tokenizer); None where the window is unknown."""
        tokens = tokens or context_window(folder)
        if tokens is None:
            return None
        from transformers import AutoTokenizer  # only for a local model: keeps transformers out of the CLI's start

        tokenizer = AutoTokenizer.from_pretrained(folder)
        overhead = 0
        if chat and tokenizer.chat_template:
            overhead = len(tokenizer.apply_chat_template([{"role": "user", "content": ""}], tokenize=True,
                                                         add_generation_prompt=True, return_dict=True)["input_ids"])
        return cls(tokens, tokenizer, chat, overhead)

    def prompt_tokens(self, record: dict, room: int) -> tuple[int, bool]:
        """(tokens, exact): the prompt's token count, or a count past `room` from a prefix (exact False). A chat
        with shots as turns holds the same text as the prompt, plus the template's tokens around each turn."""
        prompt = record["prompt"]
        overhead = self.overhead * (len(record.get("messages") or ()) or 1) if self.chat else 0
        if len(prompt.encode("utf-8")) + overhead <= room:
            return len(prompt.encode("utf-8")) + overhead, False  # an upper bound that already fits
        limit = PREFIX_CHARS_PER_TOKEN * (room + 1)
        ids = self.tokenizer(prompt[:limit], add_special_tokens=False)["input_ids"]
        return len(ids) + overhead, len(prompt) <= limit


def too_long(records: list[dict], window: Window) -> list[tuple[dict, int, bool]]:
    """(record, tokens, exact) for every prompt whose tokens plus its reply budget exceed the window."""
    over = []
    for r in records:
        room = window.tokens - r["max_tokens"]
        n, exact = window.prompt_tokens(r, room)
        if n > room:
            over.append((r, n, exact))
    return over


def check_fit(records: list[dict], window: Window | None, model: str) -> None:
    """Raise one UserError naming the prompts that do not fit `model`'s window, and what to use instead."""
    if window is None:
        return
    over = too_long(records, window)
    if not over:
        return
    worst, n, exact = max(over, key=lambda o: o[1])
    size = f"{n:,}" if exact else f"over {n:,}"
    raise UserError(
        f"{len(over)} of {len(records)} prompts do not fit {model}'s context window of {window.tokens:,} tokens "
        f"with {worst['max_tokens']} for the reply (the longest, {worst['id']}, has {size} tokens, "
        f"{worst.get('n_facts', 0):,} facts); write them again with `groklab llm-prompts ... --context retrieve "
        f"--k 20` (or --context none), or give --context-window if the server allows more"
    )
