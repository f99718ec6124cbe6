"""Sweep files: what a sweep declares, checked and expanded into one validated run config per grid point.

A sweep file (every key but `base` and `[grid]` is optional):

    base = "demo"                  # preset, TOML file or run folder (a relative path is looked up beside this file)
    description = "φ sweep"        # shown in the report
    [fixed]                        # overrides applied to every run
    "train.steps" = 12000
    [grid]                         # the Cartesian product; the first key varies slowest
    "data.phi" = [3.6, 7.2, 12.6]
    "train.seed" = [0, 1]
    [resources]                    # per run, for the Ray backend
    cpus = 1
    gpus = 0
    [analyze]                      # analyses of every checkpoint once a run has trained
    methods = ["logit-lens"]
    examples = 300

Methods compared side by side (optional): each `[methods.NAME]` sets its own overrides (`set`, which may
override [fixed]) and its own small hyper-parameter grid (`grid`); every method runs at every point of the
sweep's [grid] (the seeds), so each method is compared at its best setting, as the baseline is:

    baseline = "adamw"             # at the top level: speed-ups are measured against this method's best
    [methods.adamw]
    set = { "train.optimizer" = "adamw" }
    grid = { "train.weight_decay" = [0.1, 1.0] }
    [methods.orthograd]
    set = { "train.grad_transform" = "orthograd", "train.weight_decay" = 0.0 }

Every run's config is built and validated before anything trains; a grid point's name (`phi=3.6,seed=0`, or
`method=adamw,weight_decay=0.1,seed=0`) is its run directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config
from groklab.analysis.methods import METHODS, supports  # names and tasks only: no torch, no trainer
from groklab.errors import UserError
from groklab.runs import METHOD, run_name
from groklab.tasks import TASKS

SWEEP_DIR = Path(__file__).parent / "sweeps"
SECTIONS = {"model": config.ModelConfig, "train": config.TrainConfig, "filter": config.FilterConfig}
TOP_KEYS = ("base", "description", "fixed", "grid", "resources", "analyze", "methods", "baseline")


@dataclass(frozen=True)
class Resources:
    """What one run asks of a Ray cluster (`ray.remote(num_cpus=..., num_gpus=...)`)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Analysis:
    """`[analyze]`: analyses run over every checkpoint of each run once it has trained (`groklab analyze`)."""

    methods: tuple[str, ...] = ()
    examples: int = 300


@dataclass(frozen=True)
class Method:
    """`[methods.NAME]`: overrides that make the method (`set`) and its own hyper-parameter grid (`grid`)."""

    name: str
    set: dict[str, Any]
    grid: dict[str, list]


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    base: Path
    description: str
    fixed: dict[str, Any]
    grid: dict[str, list]
    resources: Resources
    analysis: Analysis = Analysis()
    methods: tuple[Method, ...] = ()
    baseline: str | None = None  # the method the others' speed-ups are measured against (at its best setting)

    @property
    def keys(self) -> list[str]:
        """What varies between runs: the method and its grid keys (if any), then the sweep's grid keys."""
        if not self.methods:
            return list(self.grid)
        own = [k for m in self.methods for k in m.grid]
        return [METHOD, *dict.fromkeys(own), *self.grid]


@dataclass(frozen=True)
class Point:
    """One grid point: its readable name (also its directory), the grid values and the validated config."""

    name: str
    overrides: dict[str, Any]
    config: config.RunConfig



# --- the sweep file ---------------------------------------------------------------------------------------
def resolve(name_or_path: str) -> Path:
    """A sweep file, or the name of a shipped preset (`phi-cpu` → groklab/sweeps/phi-cpu.toml)."""
    return config.find_toml(name_or_path, SWEEP_DIR, "sweep")


def check_key(key: str, table: str, path: Path, task: Any) -> None:
    """Refuse a key that is not `section.name` of the config, naming the valid ones (`data.*` keys only once
    the task is known)."""
    classes = SECTIONS | ({"data": TASKS[task].config} if task in TASKS else {})
    with config.within(f"{path}: [{table}] "):
        section, name = config.split_key(key)
        if section in classes:
            known = [f.name for f in dataclasses.fields(classes[section])] + list(config.LEGACY_KEYS.get(section, ()))
            config.refuse_unknown([name], known, f"in [{section}]", f"{section}.")


def load(name_or_path: str) -> Sweep:
    """Read and check a sweep file's structure (the configs themselves are checked by `expand`)."""
    path = resolve(name_or_path)
    raw = config.read_toml(path)
    with config.within(f"{path}: "):
        config.refuse_unknown(raw, TOP_KEYS, "at a sweep file's top level")
    if not isinstance(raw.get("base"), str):
        raise UserError(f'{path}: needs base = "PRESET" or "FILE.toml", the config every run starts from')
    base = config.resolve_beside(raw["base"], path.parent)
    for table in ("fixed", "grid", "resources", "analyze"):
        if not isinstance(raw.get(table, {}), dict):
            raise UserError(f"{path}: {table} must be a table, [{table}]")
    fixed, grid = config.flatten(raw.get("fixed", {})), config.flatten(raw.get("grid", {}))
    if not grid:
        raise UserError(f'{path}: [grid] is empty; add a key with a list of values, e.g. "data.phi" = [3.6, 7.2]')
    task = fixed.get("data.task", config.read_config(base).get("data", {}).get("task"))
    for table, values in (("fixed", fixed), ("grid", grid)):
        for key in values:
            check_key(key, table, path, None if "data.task" in grid else task)
    check_grid(grid, "[grid]", path)
    for key in grid:
        if key in fixed:
            raise UserError(f"{path}: {key} is both in [fixed] and in [grid]; keep one")
    methods = parse_methods(raw.get("methods", {}), grid, path, None if "data.task" in grid else task)
    analysis = parse_analysis(raw.get("analyze", {}), path, None if "data.task" in grid else task)
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in {m.name for m in methods}:
        raise UserError(f"{path}: baseline = {baseline!r} must name one of the [methods.NAME] tables: "
                        f"{', '.join(m.name for m in methods) or 'there are none'}")
    return Sweep(path.stem, path, base, str(raw.get("description", "")), fixed, grid,
                 parse_resources(raw.get("resources", {}), path), analysis, methods, baseline)


def check_grid(grid: dict[str, Any], table: str, path: Path) -> None:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: {table} {key} must be a non-empty list of values, e.g. {key} = [1, 2]")
        if len({json.dumps(v) for v in values}) != len(values):
            raise UserError(f"{path}: {table} {key} lists a value twice: {values}")


def parse_methods(raw: Any, grid: dict[str, list], path: Path, task: Any) -> tuple[Method, ...]:
    """`[methods.NAME]` tables, each with only `set` and `grid`; a method's keys may not be swept by [grid]."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: methods must be tables, [methods.NAME] with set = {{...}} and grid = {{...}}")
    methods = []
    for name, table in raw.items():
        where = f"[methods.{name}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+_-]*", name):
            raise UserError(f"{path}: {where}: a method name is letters, digits and . + _ - only")
        if not isinstance(table, dict):
            raise UserError(f"{path}: {where} must be a table with set = {{...}} and/or grid = {{...}}")
        with config.within(f"{path}: {where} "):
            config.refuse_unknown(table, ("set", "grid"), "in a method table")
        sets, own = config.flatten(table.get("set", {})), config.flatten(table.get("grid", {}))
        check_grid(own, where + " grid", path)
        for key in [*sets, *own]:
            check_key(key, f"methods.{name}", path, task)
            if key in grid:
                raise UserError(f"{path}: {where} sets {key}, which [grid] sweeps; keep it in one place")
        for key in set(sets) & set(own):
            raise UserError(f"{path}: {where} has {key} both in set and in grid; keep one")
        methods.append(Method(name, sets, own))
    return tuple(methods)


def parse_analysis(raw: dict, path: Path, task: str | None) -> Analysis:
    with config.within(f"{path}: "):
        analysis = config.build(Analysis, raw, "analyze")
        for method in analysis.methods:
            config.check_choice("analyze.methods", method, METHODS)
    for method in analysis.methods if task else []:
        if not supports(method, task):
            raise UserError(f"{path}: [analyze] {method} does not apply to data.task={task!r}; remove it from methods")
    if analysis.examples < 1:
        raise UserError(f"{path}: [analyze] examples = {analysis.examples} must be an integer >= 1")
    return analysis


def parse_resources(raw: dict, path: Path) -> Resources:
    with config.within(f"{path}: "):
        res = config.build(Resources, raw, "resources")
    for key, value in dataclasses.asdict(res).items():
        if value < 0:
            raise UserError(f"{path}: [resources] {key}={config.format_value(value)} must be a number >= 0")
    if res.cpus <= 0:
        raise UserError(f"{path}: [resources] cpus={res.cpus:g} must be > 0")
    return res


# --- grid → runs --------------------------------------------------------------------------------------------
def product(grid: dict[str, list]) -> list[dict[str, Any]]:
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def expand(sweep: Sweep) -> list[Point]:
    """Every grid point in product order (method by method, when the sweep compares methods), each with a
    validated config: one bad value stops the sweep before anything trains."""
    base = config.read_config(sweep.base)
    variants = [({}, {})] if not sweep.methods else [
        ({METHOD: m.name} | own, m.set | own) for m in sweep.methods for own in product(m.grid)
    ]
    points = []
    for named, settings in variants:
        for swept in product(sweep.grid):
            overrides = named | swept
            name = run_name(overrides)
            with config.within(f"{sweep.path}: run {name}: "):
                cfg = config.from_dict(config.set_dotted(base, sweep.fixed | settings | swept))
            points.append(Point(name, overrides, cfg))
    seen: dict[str, int] = {}
    for p in points:
        seen[p.name] = seen.get(p.name, 0) + 1
        if seen[p.name] > 1:
            raise UserError(f"{sweep.path}: two grid points are both named {p.name!r}; make the values distinct")
    return points
