"""Sweep files: what a sweep declares, checked and expanded into one validated run config per grid point.

A sweep file (every key but `base` and `[grid]` is optional):

    base = "demo"                  # preset name or TOML file (a relative path is looked up beside this file)
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

Every run's config is built and validated before anything trains; a grid point's name (`phi=3.6,seed=0`) is
its run directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config
from groklab.errors import UserError

SWEEP_DIR = Path(__file__).parent / "sweeps"
SECTIONS = {"model": config.ModelConfig, "train": config.TrainConfig, "filter": config.FilterConfig}
TOP_KEYS = ("base", "description", "fixed", "grid", "resources", "analyze")


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
class Sweep:
    name: str
    path: Path
    base: Path
    description: str
    fixed: dict[str, Any]
    grid: dict[str, list]
    resources: Resources
    analysis: Analysis = Analysis()


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


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the file") from None


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """`{"data": {"phi": 1}}` → `{"data.phi": 1}`, so `data.phi = ...` and `"data.phi" = ...` mean the same.
    No config value is itself a table, so every table is a level of the key."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_key(key: str, table: str, path: Path, task: Any) -> None:
    """Refuse a key that is not `section.name` of the config, naming the valid ones."""
    section, dot, name = key.partition(".")
    classes = dict(SECTIONS)
    from groklab.tasks import TASKS

    if task in TASKS:
        classes["data"] = TASKS[task].config
    if not dot or "." in name or section not in (*classes, "data"):
        raise UserError(
            f"{path}: [{table}] key {key!r} must be section.name with section data, model, train or filter, "
            'e.g. "data.phi"'
        )
    if section in classes:
        known = sorted(f.name for f in dataclasses.fields(classes[section]))
        if name not in known:
            raise UserError(f"{path}: [{table}] unknown key {key}; valid keys in [{section}]: {', '.join(known)}")


def load(name_or_path: str) -> Sweep:
    """Read and check a sweep file's structure (the configs themselves are checked by `expand`)."""
    path = resolve(name_or_path)
    raw = read_toml(path)
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r}; valid top-level keys: {', '.join(TOP_KEYS)}")
    if not isinstance(raw.get("base"), str):
        raise UserError(f'{path}: needs base = "PRESET" or "FILE.toml", the config every run starts from')
    beside = path.parent / raw["base"]
    base = beside if beside.is_file() else config.resolve_preset(raw["base"])
    for table in ("fixed", "grid", "resources", "analyze"):
        if not isinstance(raw.get(table, {}), dict):
            raise UserError(f"{path}: {table} must be a table, [{table}]")
    fixed, grid = flatten(raw.get("fixed", {})), flatten(raw.get("grid", {}))
    if not grid:
        raise UserError(f'{path}: [grid] is empty; add a key with a list of values, e.g. "data.phi" = [3.6, 7.2]')
    task = fixed.get("data.task", read_toml(base).get("data", {}).get("task"))
    for table, values in (("fixed", fixed), ("grid", grid)):
        for key in values:
            check_key(key, table, path, None if "data.task" in grid else task)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: [grid] {key} must be a non-empty list of values, e.g. {key} = [1, 2]")
        if len({json.dumps(v) for v in values}) != len(values):
            raise UserError(f"{path}: [grid] {key} lists a value twice: {values}")
        if key in fixed:
            raise UserError(f"{path}: {key} is both in [fixed] and in [grid]; keep one")
    analysis = parse_analysis(raw.get("analyze", {}), path, None if "data.task" in grid else task)
    return Sweep(path.stem, path, base, str(raw.get("description", "")), fixed, grid,
                 parse_resources(raw.get("resources", {}), path), analysis)


def parse_analysis(raw: dict, path: Path, task: str | None) -> Analysis:
    from groklab.analysis.across import METHODS, supports

    known = [f.name for f in dataclasses.fields(Analysis)]
    for key in raw:
        if key not in known:
            raise UserError(f"{path}: [analyze] unknown key {key!r}; valid keys: {', '.join(known)}")
    methods = raw.get("methods", [])
    if not isinstance(methods, list) or any(m not in METHODS for m in methods):
        raise UserError(f"{path}: [analyze] methods = {methods!r} must list methods among {', '.join(METHODS)}")
    for method in methods if task else []:
        if not supports(method, task):
            raise UserError(f"{path}: [analyze] {method} does not apply to data.task={task!r}; remove it from methods")
    examples = raw.get("examples", Analysis.examples)
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise UserError(f"{path}: [analyze] examples = {examples!r} must be an integer >= 1")
    return Analysis(tuple(methods), examples)


def parse_resources(raw: dict, path: Path) -> Resources:
    known = [f.name for f in dataclasses.fields(Resources)]
    for key, value in raw.items():
        if key not in known:
            raise UserError(f"{path}: [resources] unknown key {key!r}; valid keys: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UserError(f"{path}: [resources] {key}={value!r} must be a number >= 0")
    res = Resources(**{k: float(v) for k, v in raw.items()})
    if res.cpus <= 0:
        raise UserError(f"{path}: [resources] cpus={res.cpus:g} must be > 0")
    return res


# --- grid → runs --------------------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A value as it reads in a directory name: 9.0 → 9, 1e-4 → 0.0001, [0.9, 0.98] → 0.9_0.98."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, list | tuple):
        return "_".join(format_value(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", str(value))


def short_names(keys: list[str]) -> dict[str, str]:
    """`data.phi` → `phi`, unless another key has the same last part (`data.seed`, `train.seed`)."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def run_name(overrides: dict[str, Any]) -> str:
    names = short_names(list(overrides))
    return ",".join(f"{names[k]}={format_value(v)}" for k, v in overrides.items())


def merge(raw: dict, values: dict[str, Any]) -> dict:
    """The base config's nested dict with dotted `values` set (a copy)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for key, value in values.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def expand(sweep: Sweep) -> list[Point]:
    """Every grid point in product order, each with a validated config: one bad value stops the sweep before
    anything trains."""
    base = read_toml(sweep.base)
    points = []
    for combo in itertools.product(*sweep.grid.values()):
        overrides = dict(zip(sweep.grid, combo, strict=True))
        name = run_name(overrides)
        try:
            cfg = config.from_dict(merge(base, sweep.fixed | overrides))
        except UserError as exc:
            raise UserError(f"{sweep.path}: run {name}: {exc}") from None
        points.append(Point(name, overrides, cfg))
    seen: dict[str, int] = {}
    for p in points:
        seen[p.name] = seen.get(p.name, 0) + 1
        if seen[p.name] > 1:
            raise UserError(f"{sweep.path}: two grid points are both named {p.name!r}; make the values distinct")
    return points
