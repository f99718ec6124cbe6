"""The paper's LLM baseline on our own data (Wang et al. 2024 §5): parametric memory (a grokked transformer, the
facts in its weights) against non-parametric memory (a language model given the facts in its context window,
all of them or the k that a retriever finds).

    groklab llm-prompts runs/cx --out cx.jsonl --context retrieve --k 20      # prompts.py, names.py, retrieve.py
    groklab llm-eval cx.jsonl --base-url https://api.openai.com/v1 --model gpt-4-turbo --api-key-env OPENAI_API_KEY

`client.py` talks to any OpenAI-compatible server (retries, a resumable answer cache); `window.py` refuses prompts
longer than the model's context window before asking; `evaluate.py` reads the answers strictly and leniently and
writes `llm-eval.json` beside the grokked model's accuracy on the same queries; `local.py` makes a small LLM from
a PyPI package servable (`groklab llm-local smollm2-135m`); `table.py` draws docs/llm-baseline.md from the records.
"""
