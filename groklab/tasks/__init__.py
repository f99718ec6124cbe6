"""Task registry: each task is a config class, a pure, seeded `generate(config) -> TaskData` and the roles of
its probes, e.g. `generate(TASKS["composition"].config(n_entities=100, phi=9.0))`. Everything other modules need
to know about a task is stated here (CONTRIBUTING.md: adding a task); `tests/test_registries.py` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from groklab import sizes, typed
from groklab.errors import UserError
from groklab.tasks import comparison, complex, composition, dyck, logic, modular, paper, structural
from groklab.tasks.dataset import REQUIRED_ROLES, Split, TaskData
from groklab.tasks.paper import PaperFormat
from groklab.tasks.ranking_shortcut import ranking_shortcut


@dataclass(frozen=True)
class TaskSpec:
    """A task's config dataclass (with `validate()`), its generator and its probes' roles."""

    config: type
    generate: Callable[[Any], TaskData]
    # role -> probe name (tasks/dataset.py's ROLE_MEANINGS): what fit and grok are read on, what reports and
    # figures show; the generator's TaskData.roles (less any role whose probe came out empty)
    roles: dict[str, str]
    sequence: bool = False  # one language-model sequence per example (targets at every position)
    # row groups of a probe whose accuracies are logged too, as `<probe>/acc_<group>` (comparison: per label and
    # per value gap, which tell value retrieval from a ranking shortcut)
    breakdowns: Callable[[Split], dict[str, np.ndarray]] | None = None
    # the answer's class per row when classes are spelled with several tokens (comparison's per-attribute
    # labels): the no-information baseline is the majority class. None: the answer token is the class.
    answer_classes: Callable[[Split], np.ndarray | None] | None = None
    # per probe, the accuracy of a shortcut that ignores the task's mechanism (comparison: a ranking fitted to
    # the training comparisons alone, tasks/ranking_shortcut.py); summary.json's `shortcut`
    shortcut: Callable[[TaskData], dict[str, float]] | None = None
    # the shape of a knowledge task's facts, which the LLM prompts (llm/prompts.py) and the paper's file format
    # (tasks/io.py) read: "chain" (head r1 [r2] -> tail; fields head, r1, r2, bridge) or "compare" (entity
    # attribute -> value, e1 attribute e2 -> label; fields attribute, entity, value, e1, e2, v1, v2). None: not
    # a knowledge task (no LLM prompts)
    facts: Literal["chain", "compare"] | None = None
    # the paper's released file format for this task (tasks/paper.py); None: `--format paper` is refused
    paper: PaperFormat | None = None


TASKS: dict[str, TaskSpec] = {
    "composition": TaskSpec(
        composition.CompositionConfig, composition.generate, composition.ROLES,
        facts="chain", paper=paper.COMPOSITION,
    ),
    "comparison": TaskSpec(
        comparison.ComparisonConfig, comparison.generate, comparison.ROLES,
        breakdowns=comparison.breakdowns, answer_classes=comparison.answer_classes, shortcut=ranking_shortcut,
        facts="compare", paper=paper.COMPARISON,
    ),
    "complex": TaskSpec(
        complex.ComplexConfig, complex.generate, complex.ROLES,
        breakdowns=comparison.breakdowns, answer_classes=comparison.answer_classes, shortcut=ranking_shortcut,
        facts="compare", paper=paper.COMPLEX,
    ),
    "modular": TaskSpec(modular.ModularConfig, modular.generate, modular.ROLES),
    "logic": TaskSpec(logic.LogicConfig, logic.generate, logic.ROLES),  # propositional logic, a curriculum rung
    # structural grokking (Murty et al. 2023): sequence tasks, one LM sequence per example
    "question-formation": TaskSpec(
        structural.QuestionFormationConfig, structural.generate, structural.ROLES, sequence=True
    ),
    "tense-inflection": TaskSpec(
        structural.TenseInflectionConfig, structural.generate, structural.ROLES, sequence=True
    ),
    "dyck": TaskSpec(dyck.DyckConfig, dyck.generate, dyck.ROLES, sequence=True),
}

SEQUENCE_TASKS = tuple(name for name, spec in TASKS.items() if spec.sequence)
DATASET_TASKS = tuple(name for name, spec in TASKS.items() if not spec.sequence)  # what a dataset folder holds


def generate(cfg: Any) -> TaskData:
    """The task's data for a (validated here) task config; same config → identical arrays."""
    spec = TASKS.get(getattr(cfg, "task", None))
    if spec is None:
        raise UserError(f"data.task={getattr(cfg, 'task', None)!r} is unknown; valid tasks: {', '.join(sorted(TASKS))}")
    if not isinstance(cfg, spec.config):
        raise UserError(f"data.task={cfg.task!r} needs a {spec.config.__name__}, got {type(cfg).__name__}")
    typed.check_fields(cfg, "data")  # types, choices, finite numbers: also for configs built in Python
    cfg.validate()
    sizes.check_data(cfg)  # one error line, before generating, for data this machine cannot hold
    return without_empty_probes(spec.generate(cfg))


def probe_breakdowns(data: TaskData) -> dict[str, dict[str, np.ndarray]]:
    """Per probe, its non-empty row groups (see TaskSpec.breakdowns); probes without groups are left out."""
    spec = TASKS.get(data.task)
    if spec is None or spec.breakdowns is None:
        return {}
    out = {}
    for name, split in data.probes.items():
        groups = {g: mask for g, mask in spec.breakdowns(split).items() if mask.any()}
        if groups:
            out[name] = groups
    return out


def no_information(data: TaskData) -> dict[str, float]:
    """Per probe, the accuracy of always answering the probe's most frequent answer class (the label prior): the
    level an accuracy must be read against. Comparison's OOD test sits near 0.47 (ties are ~5%), not 1/3."""
    spec = TASKS.get(data.task)
    out = {}
    for name, split in data.probes.items():
        classes = spec.answer_classes(split) if spec is not None and spec.answer_classes else None
        classes = split.answers if classes is None else classes
        if len(classes):
            out[name] = float(np.unique(classes, return_counts=True)[1].max() / len(classes))
    return out


def shortcut_baseline(data: TaskData) -> dict[str, float]:
    """Per probe, the accuracy of the task's mechanism-free shortcut (TaskSpec.shortcut); {} if it has none."""
    spec = TASKS.get(data.task)
    return spec.shortcut(data) if spec is not None and spec.shortcut is not None else {}


def without_empty_probes(data: TaskData) -> TaskData:
    """Drop probes with no rows (e.g. no OOD test at ood_fraction=0) and the roles naming them: an empty probe
    has no accuracy. The train and test_id probes must not be empty."""
    empty = {name for name, split in data.probes.items() if len(split) == 0}
    for role in REQUIRED_ROLES:
        if data.roles.get(role) in empty:
            raise UserError(
                f"{data.task}: the {role} probe {data.roles[role]!r} is empty with these settings; "
                "use a larger knowledge base or held-out fraction"
            )
    if not empty:
        return data
    probes = {name: split for name, split in data.probes.items() if name not in empty}
    roles = {role: name for role, name in data.roles.items() if name not in empty}
    return replace(data, probes=probes, roles=roles)
