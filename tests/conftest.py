"""Shared fixtures: tiny configs that train in seconds on a 2-core CPU."""

from __future__ import annotations

import pytest

from groklab import config

TINY = [
    "data.n_entities=40",
    "data.phi=3.0",
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=4",
    "model.d_mlp=64",
    "train.steps=60",
    "train.batch_size=128",
    "train.warmup_steps=5",
    "train.eval_points=12",
    "train.ckpt_points=4",
    "train.threads=1",
    "train.stop_on_grok=false",
]


@pytest.fixture
def tiny_config():
    def make(*extra: str) -> config.RunConfig:
        return config.load("demo", TINY + list(extra))

    return make


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`groklab demo`, trained once per test session (about 5 minutes on 2 cores): tests/test_demo.py checks
    its science, and notebook 01 reads it (GROKLAB_DEMO_RUN) instead of training the same run a second time.
    Returns the run directory and what the command printed."""
    import contextlib
    import io

    from groklab.cli import main

    run_dir = tmp_path_factory.mktemp("demo") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(run_dir)]) == 0
    return run_dir, printed.getvalue()
