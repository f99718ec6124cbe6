"""Sweeps: a grid over dotted config keys → one run directory per grid point, trained locally or on Ray.

    groklab sweep phi-cpu --jobs 2                  # sweeps/phi-cpu.toml → runs/phi-cpu/phi=3.6/ ...
    groklab sweep my.toml --backend ray --address auto

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

Every run's config is built and validated before anything trains. Idempotent by run directory: running the
sweep again skips finished runs, resumes interrupted ones and starts the rest; a directory that holds a run
with another config is an error, never silently reused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config, runs
from groklab.errors import UserError

SWEEP_DIR = Path(__file__).parent / "sweeps"
SECTIONS = {"model": config.ModelConfig, "train": config.TrainConfig, "filter": config.FilterConfig}
TOP_KEYS = ("base", "description", "fixed", "grid", "resources", "analyze")
IGNORED_WHEN_COMPARING = {"train.threads"}  # set per job from --jobs / resources; does not define the run


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


@dataclass(frozen=True)
class Job:
    """What a worker process needs to train one run; plain data so it pickles for processes and Ray."""

    name: str
    run_dir: str
    action: str  # start | resume
    config: dict
    threads: int
    analyze: tuple[str, ...] = ()
    examples: int = 300


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


# --- planning: skip, resume or start ---------------------------------------------------------------------
def state(run_dir: Path) -> str:
    """new (nothing trained), finished (a final summary.json), or interrupted (config but no final summary)."""
    from groklab import checkpoint

    if not (run_dir / "config.json").is_file():
        if run_dir.exists() and any(not p.name.startswith(".") for p in run_dir.iterdir()):
            raise UserError(f"{run_dir} exists but holds no run (no config.json); remove it or pick another --out")
        return "new"
    if (run_dir / "summary.json").is_file():
        final = runs.read_json(run_dir / "summary.json").get("final_step")
        if final is not None and final >= max(checkpoint.list_steps(run_dir), default=0):
            return "finished"
    return "interrupted"


def check_same_config(run_dir: Path, cfg: config.RunConfig) -> None:
    """A directory named after a grid point must hold that point's run, not one from an edited sweep file."""
    # read through the config classes, so that a field added since (at its default) is not a difference
    have = flatten(json.loads(json.dumps(config.from_dict(runs.read_json(run_dir / "config.json")).to_dict())))
    want = flatten(json.loads(json.dumps(cfg.to_dict())))
    for key in sorted((set(have) | set(want)) - IGNORED_WHEN_COMPARING):
        if have.get(key) != want.get(key):
            raise UserError(
                f"{run_dir} holds a run with {key}={have.get(key)!r}, but the sweep now asks for "
                f"{want.get(key)!r}; use another --out, or remove that run to retrain it"
            )


def plan(points: list[Point], sweep_dir: Path, threads: int, analysis: Analysis | None = None
         ) -> tuple[list[Job], list[str]]:
    """Jobs to run (start, resume, or only the analyses a finished run lacks) and the finished runs to skip."""
    analysis = analysis or Analysis()
    jobs, skipped = [], []
    for p in points:
        run_dir = (sweep_dir / p.name).resolve()
        now = state(run_dir)
        if now != "new":
            check_same_config(run_dir, p.config)
        missing = analysis.methods if now != "finished" else stale_analyses(run_dir, analysis)
        if now == "finished" and not missing:
            skipped.append(p.name)
            continue
        cfg = p.config
        if cfg.train.threads == 0:  # not fixed by the sweep: cores // jobs, recorded in config.json
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))
        action = {"new": "start", "finished": "analyze"}.get(now, "resume")
        jobs.append(Job(p.name, str(run_dir), action, cfg.to_dict(), cfg.train.threads, missing, analysis.examples))
    return jobs, skipped


def stale_analyses(run_dir: Path, analysis: Analysis) -> tuple[str, ...]:
    """The methods whose JSON is missing, covers other checkpoints than the run now has, or used another
    number of examples: each must be (re)run."""
    from groklab import checkpoint

    steps = checkpoint.list_steps(run_dir)
    stale = []
    for method in analysis.methods:
        found = [runs.read_json(f) for f in sorted((run_dir / "analysis").glob(f"{method}-*.json"))]
        current = any([c["step"] for c in a.get("checkpoints", [])] == steps
                      and a.get("examples_asked") == analysis.examples for a in found)
        if not current:
            stale.append(method)
    return tuple(stale)


def manifest(sweep: Sweep, points: list[Point]) -> dict:
    """sweep.json: what was expanded, so a report knows which keys vary without reading the TOML."""
    return {
        "name": sweep.name,
        "sweep_file": str(sweep.path.resolve()),
        "base": str(sweep.base.resolve()),
        "description": sweep.description,
        "fixed": sweep.fixed,
        "grid": sweep.grid,
        "keys": list(sweep.grid),
        "resources": dataclasses.asdict(sweep.resources),
        "analyze": dataclasses.asdict(sweep.analysis),
        "runs": [{"name": p.name, "dir": p.name, "overrides": p.overrides} for p in points],
    }


# --- one run, in a worker process --------------------------------------------------------------------------
def execute(job: Job) -> dict:
    """Train one run to its end (start or resume) and draw its figure. Runs in a worker process (or Ray task);
    returns a plain dict and never raises, so one failed run does not stop the others."""
    import torch

    from groklab import plots, train
    from groklab.analysis.across import analyze

    run_dir = Path(job.run_dir)
    result: dict[str, Any] = {"name": job.name, "action": job.action, "status": "failed"}
    try:
        if job.action == "analyze":
            summary = runs.read_json(run_dir / "summary.json")
        else:
            if job.action == "resume":
                trainer = train.resume(run_dir, progress=False)
                result["from_step"] = trainer.step
            else:
                trainer = train.start(config.from_dict(job.config), run_dir, progress=False)
            torch.set_num_threads(job.threads)  # a resumed run's config.json may name another count
            summary = trainer.run()
            plots.run_accuracy_figure(run_dir, summary, f"{run_dir.parent.name}/{run_dir.name}")
        torch.set_num_threads(job.threads)
        for method in job.analyze:
            analyze(run_dir, method, None, job.examples, progress=False)
        result |= {"status": "done", "summary": summary, "analyzed": list(job.analyze)}
    except UserError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # a bug: keep the traceback, but let the other runs go on
        result |= {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return result


# --- the whole sweep ------------------------------------------------------------------------------------------
def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_job(backend: str, jobs: int, resources: Resources) -> int:
    """Never more threads than cores in all: on 2 cores two 2-thread runs were 4× slower than two 1-thread runs."""
    if backend == "ray":
        return max(1, math.floor(resources.cpus))
    return max(1, available_cores() // jobs)


def run(
    sweep: Sweep,
    out: Path,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    say: Callable[[str], None] = print,
) -> list[dict]:
    """Expand, plan, write sweep.json, then train what is missing; one status line per run as it ends."""
    from groklab import sweep_backends

    if jobs < 1:
        raise UserError(f"--jobs {jobs} must be >= 1")
    points = expand(sweep)
    todo, skipped = plan(points, out, threads_per_job(backend, jobs, sweep.resources), sweep.analysis)
    execute_all = sweep_backends.get(backend, jobs, address, sweep.resources)  # fails early if Ray is missing
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(out / "sweep.json", manifest(sweep, points))
    say(f"sweep {sweep.name}: {len(points)} runs in {out} ({len(skipped)} finished, {len(todo)} to train)")
    results = {name: {"name": name, "action": "skip", "status": "skipped"} for name in skipped}
    width = max(len(p.name) for p in points)
    for name in skipped:
        say(f"  {name:<{width}}  skipped: {outcome(runs.read_json(out / name / 'summary.json'))}")
    for result in execute_all(execute, todo):
        results[result["name"]] = result
        say(f"  {result['name']:<{width}}  {status_line(result)}")
    return [results[p.name] for p in points]


def outcome(summary: dict) -> str:
    if summary.get("grok_step") is None:
        return f"never grokked in {summary['final_step']:,} steps"
    epoch = summary.get("grok_epoch")
    return f"grok at step {summary['grok_step']:,}" + (f" (epoch {epoch:.1f})" if epoch is not None else "")


def status_line(result: dict) -> str:
    if result["status"] == "failed":
        return f"failed: {result['error']}"
    summary = result["summary"]
    verb = {"resume": f"resumed from step {result.get('from_step', 0):,}, done", "analyze": "already trained"}.get(
        result["action"], "done")
    analyzed = f"; analysed: {', '.join(result['analyzed'])}" if result.get("analyzed") else ""
    return f"{verb}: {outcome(summary)}, {summary['elapsed_s']:.0f} s{analyzed}"

