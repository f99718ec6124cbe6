"""groklab: make small transformers grok, and see why."""

__version__ = "0.1.0"

# The Python API (groklab/api.py), also reachable here: `groklab.make_dataset(...)`. Loaded on first use, so
# `import groklab` stays cheap. Its `train` is not among them: `groklab.train` is the trainer's module, so
# train with `groklab.api.train`.
API = (
    "Analysis", "FigureFile", "Run", "Table", "analyze", "describe", "facts_table", "load_config", "load_dataset",
    "load_run", "make_dataset", "plot_accuracy", "resume", "write_dataset",
)


def __getattr__(name: str):
    if name in API:
        from groklab import api

        return getattr(api, name)
    raise AttributeError(f"module 'groklab' has no attribute {name!r}")
