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
