"""groklab: make small transformers grok, and see why."""

__version__ = "0.1.0"
