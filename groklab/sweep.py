"""Sweeps: a grid over dotted config keys → one run directory per grid point, trained locally or on Ray.

    groklab sweep phi-cpu --jobs 2                  # sweeps/phi-cpu.toml → runs/phi-cpu/phi=3.6/ ...
    groklab sweep my.toml --backend ray --address auto

The file format is in `groklab.sweep_file`. Idempotent by run directory: running the sweep again skips
finished runs, resumes interrupted ones and starts the rest; a directory that holds a run with another
config is an error, never silently reused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config, runs, sweep_backends
from groklab.errors import UserError
from groklab.grokking import NEVER
from groklab.runs import IGNORED_WHEN_COMPARING, MANIFEST
from groklab.sweep_file import Analysis, Point, Resources, Sweep, expand


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


# --- planning: skip, resume or start ---------------------------------------------------------------------
def state(run_dir: Path) -> str:
    """new (nothing trained), finished (`runs.is_finished`), or interrupted (a config, but not finished)."""
    if not runs.is_run(run_dir):
        if run_dir.exists() and any(not p.name.startswith(".") for p in run_dir.iterdir()):
            raise UserError(f"{run_dir} exists but holds no run (no {runs.CONFIG}); remove it or pick another --out")
        return "new"
    return "finished" if runs.is_finished(run_dir) else "interrupted"


def check_same_config(run_dir: Path, cfg: config.RunConfig) -> None:
    """A directory named after a grid point must hold that point's run, not one from an edited sweep file."""
    have, want = runs.comparable(runs.read_config(run_dir)), runs.comparable(cfg)
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
    steps = runs.list_steps(run_dir)
    stale = []
    for method in analysis.methods:
        found = runs.read_analyses(run_dir, method)
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
        "keys": sweep.keys,
        "methods": {m.name: {"set": m.set, "grid": m.grid} for m in sweep.methods},
        "baseline": sweep.baseline,
        "resources": dataclasses.asdict(sweep.resources),
        "analyze": dataclasses.asdict(sweep.analysis),
        "runs": [{"name": p.name, "dir": p.name, "overrides": p.overrides} for p in points],
    }


def merged_manifest(earlier: dict, new: dict, out: Path) -> tuple[dict, list[str]]:
    """sweep.json when another sweep file (one seed of a preset, say) already trained runs in this folder: its
    runs that this expansion lacks are kept, with their grid values, so a report still sees every run here."""
    names = {r["dir"] for r in new["runs"]}
    kept = [r for r in earlier.get("runs", []) if r["dir"] not in names and runs.is_run(out / r["dir"])]
    if not kept:
        return new, []
    grid = {k: list(v) for k, v in new["grid"].items()}
    for key, values in earlier.get("grid", {}).items():
        grid.setdefault(key, [])
        grid[key] += [v for v in values if v not in grid[key]]
    merged = new | {
        "grid": grid,
        "keys": new["keys"] + [k for k in earlier.get("keys", []) if k not in new["keys"]],
        "methods": earlier.get("methods", {}) | new["methods"],
        "runs": new["runs"] + kept,
        "merged_from": sorted({*earlier.get("merged_from", []), earlier.get("sweep_file", "?")} - {new["sweep_file"]}),
    }
    return merged, [r["name"] for r in kept]


# --- one run, in a worker process --------------------------------------------------------------------------
def execute(job: Job) -> dict:
    """Train one run to its end (start or resume) and draw its figure. Runs in a worker process (or Ray task);
    returns a plain dict and never raises, so one failed run does not stop the others."""
    # the trainer and torch load in the worker only: planning a sweep, its --help and `groklab record` need neither
    import torch

    from groklab import train
    from groklab.analysis.over_checkpoints import analyze
    from groklab.figures.accuracy import run_accuracy_figure

    run_dir = Path(job.run_dir)
    result: dict[str, Any] = {"name": job.name, "action": job.action, "status": "failed"}
    try:
        if job.action == "analyze":
            summary = runs.read_summary(run_dir)
        else:
            if job.action == "resume":
                trainer = train.resume(run_dir, progress=False)
                result["from_step"] = trainer.step
            else:
                trainer = train.start(config.from_dict(job.config), run_dir, progress=False)
            torch.set_num_threads(job.threads)  # a resumed run's config.json may name another count
            summary = trainer.run()
            run_accuracy_figure(run_dir, summary, f"{run_dir.parent.name}/{run_dir.name}")
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
    if jobs < 1:
        raise UserError(f"--jobs {jobs} must be >= 1")
    points = expand(sweep)
    todo, skipped = plan(points, out, threads_per_job(backend, jobs, sweep.resources), sweep.analysis)
    execute_all = sweep_backends.get(backend, jobs, address, sweep.resources)  # fails early if Ray is missing
    out.mkdir(parents=True, exist_ok=True)
    written = manifest(sweep, points)
    if (out / MANIFEST).is_file():
        written, kept = merged_manifest(runs.read_json(out / MANIFEST), written, out)
        if kept:
            say(f"sweep.json keeps {len(kept)} runs of an earlier sweep in {out} ({', '.join(written['merged_from'])})")
    runs.write_json(out / MANIFEST, written)
    say(f"sweep {sweep.name}: {len(points)} runs in {out} ({len(skipped)} finished, {len(todo)} to train)")
    results = {name: {"name": name, "action": "skip", "status": "skipped"} for name in skipped}
    width = max(len(p.name) for p in points)
    for name in skipped:
        say(f"  {name:<{width}}  skipped: {outcome(runs.read_summary(out / name))}")
    for result in execute_all(execute, todo):
        results[result["name"]] = result
        say(f"  {result['name']:<{width}}  {status_line(result)}")
    return [results[p.name] for p in points]


def outcome(summary: dict) -> str:
    if summary.get("grok_step") is None:
        return f"{NEVER} grokked in {summary['final_step']:,} steps"
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
