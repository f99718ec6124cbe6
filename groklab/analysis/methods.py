"""The table of analysis methods: the one place `groklab analyze --method`, sweep files' `[analyze] methods` and
`analyze()` learn which methods exist, which tasks each applies to, which split it reads by default, what it
measures at a checkpoint and which figures it draws.

Importing this module is cheap (no torch, no matplotlib): a method's functions are named by dotted path and
imported only when the method runs, so checking a sweep file never loads the trainer. Adding a method is
its own module plus one entry in METHODS (CONTRIBUTING.md); `tests/test_registries.py` fails when an entry
is incomplete.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from groklab.analysis.targets import PERTURBED_TOKENS, TARGETS
from groklab.errors import UserError
from groklab.tasks import SEQUENCE_TASKS

if TYPE_CHECKING:
    from groklab.tasks.dataset import TaskData


@dataclass(frozen=True)
class Measure:
    """A method prepared for one run's rows (perturbations drawn once, reused at every checkpoint)."""

    at_checkpoint: Callable[[Any, Any], dict]  # (model, device) -> one checkpoint's JSON-able results
    about: dict = field(default_factory=dict)  # written once at the top of the JSON (e.g. position names)


@dataclass(frozen=True)
class Method:
    """One analysis method. `prepare` and each figure are "module:function" paths (imported when used):
    prepare(data: TaskData, rows: Split) -> Measure; figure(analysis, metrics, summary, path) -> path."""

    name: str  # --method, [analyze] methods, analysis/<name>-<probe>.json
    tasks: tuple[str, ...]  # the tasks whose data it knows how to read
    default_split: Callable[[TaskData], str]  # the probe it analyses when --split names none
    prepare: str
    figures: tuple[tuple[str, str], ...]  # (file suffix after <name>-<probe>, figure function)


def probe_named(name: str) -> Callable[[TaskData], str]:
    return lambda data: name


def generalisation_probe(data: TaskData) -> str:
    """Murty et al.'s generalisation split "gen" where the run has one, else the run's ID test probe."""
    return "gen" if "gen" in data.probes else data.roles["test_id"]


FIGURES = "groklab.figures.analysis"
METHODS: dict[str, Method] = {m.name: m for m in (
    # the paper's choices of probe (Wang et al. 2024 §3.3, App. D)
    Method("logit-lens", tuple(TARGETS), probe_named("test_inferred_id"), "groklab.analysis.logit_lens:prepare",
           ((".png", f"{FIGURES}:logit_lens_curves"),)),
    Method("causal-tracing", tuple(PERTURBED_TOKENS), probe_named("train_inferred"),
           "groklab.analysis.causal_tracing:prepare",
           ((".png", f"{FIGURES}:causal_tracing_heatmaps"), ("-curves.png", f"{FIGURES}:causal_tracing_curves"))),
    # tree projections need sentences with gold trees: the sequence tasks (Murty et al. 2023)
    Method("tree-projection", SEQUENCE_TASKS, generalisation_probe, "groklab.analysis.tree_projection:prepare",
           (("-curves.png", f"{FIGURES}:tree_projection_curves"),)),
    # is each entity's value readable at its position, for held-out ID keys and for OOD keys?
    Method("value-probe", ("comparison",), probe_named("test_inferred_ood"), "groklab.analysis.value_probe:prepare",
           (("-curves.png", f"{FIGURES}:value_probe_curves"),)),
)}


def get(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"--method {name!r} is unknown; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def supports(method: str, task: str) -> bool:
    """Whether `method` knows `task`'s data."""
    return task in METHODS[method].tasks


def load(path: str) -> Callable:
    """The function a "module:function" path names."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
