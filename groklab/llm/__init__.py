"""The paper's LLM baseline on our own data (Wang et al. 2024 §5): parametric memory (a grokked transformer, the
facts in its weights) against non-parametric memory (a language model given the facts in its context window,
all of them or the k that a retriever finds).

    groklab llm-prompts runs/cx --out cx.jsonl --context retrieve --k 20      # prompts.py, names.py, retrieve.py
    groklab llm-eval cx.jsonl --base-url https://api.openai.com/v1 --model gpt-4-turbo --api-key-env OPENAI_API_KEY

`client.py` talks to any OpenAI-compatible server (retries, a resumable answer cache); `evaluate.py` parses the
answers strictly and writes `llm-eval.json` beside the grokked model's accuracy on the same queries.
"""
