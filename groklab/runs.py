"""A run is a self-describing directory, and this module is its one owner:

    config.json    fully resolved config          meta.json      versions, git sha, device, data source
    metrics.jsonl  one object per evaluation      summary.json   fit/grok steps and final accuracies
    ckpt/step_*/   atomic checkpoints             accuracy.png   every probe's accuracy vs step
    analysis/      <method>-<probe>.json and its figures (`groklab analyze`)
    tensorboard/   wandb/                        mirrors of metrics.jsonl (`groklab.trackers`), ledger .mirrored.json
    llm-eval.json  LLMs scored on the run's queries beside its own model (`groklab llm-eval`)

It names these files (once, below), and the names run folders are made of in a sweep or a curriculum folder
(sweep.json, a run's method, grid-point names, carried probes); opens a run for reading (config, summary,
metrics, analysis files, the data it trained on) and reads it back as one `RunRecord` for every reader; says
when a run is finished; and holds the one atomic writer (`groklab.atomic`) that every file goes through.
Readers (analysis, export, sweeps, reports, claims) come here, never to the trainer: stages talk through the
directory, which is why reports work on live sweeps and resume is exact. Nothing here imports torch.
"""

from __future__ import annotations

import fcntl
import json
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import groklab
from groklab import config, sizes
from groklab.atomic import atomic as atomic  # the one atomic writer, spelt runs.X by every writer of a run
from groklab.atomic import atomic_dir as atomic_dir
from groklab.atomic import temp_sibling as temp_sibling
from groklab.atomic import write_bytes as write_bytes
from groklab.atomic import write_figure as write_figure
from groklab.atomic import write_json, write_text
from groklab.errors import UserError
from groklab.grokking import summarize
from groklab.tasks import TASKS, generate
from groklab.tasks.dataset import TaskData
from groklab.tasks.io import load_dataset

CONFIG = config.RUN_CONFIG
META = "meta.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
ACCURACY_FIGURE = "accuracy.png"
ANALYSIS_DIR = "analysis"
CKPT_DIR = "ckpt"
LOCK = ".lock"
TENSORBOARD_DIR = "tensorboard"  # train.tensorboard = true: event files mirroring metrics.jsonl
WANDB_DIR = "wandb"  # train.wandb = "offline": W&B's own folder, offline-run-<time>-<id>/ per process
MIRRORED = ".mirrored.json"  # the last step each mirror holds, so a resumed run never writes a point twice
LLM_EVAL = "llm-eval.json"  # `groklab llm-eval`: LLMs scored on the run's queries, beside the run's own model
# a sweep folder (groklab.sweep) and a curriculum folder (groklab.curriculum) hold run folders side by side, and
MANIFEST = "sweep.json"  # the sweep's expansion: its keys, grid and runs (groklab.sweep.manifest)
METHOD = "method"  # the pseudo-key that names a run's method in a sweep's overrides and in sweep.json
IGNORED_WHEN_COMPARING = {"train.threads"}  # set per job from --jobs / resources; does not define the run
PLAN = "curriculum.json"  # the curriculum's resolved plan
REPORT_DIR = "report"  # the curriculum's report
CARRIED = "--"  # `<stage>--<probe>`: an earlier stage's probe evaluated in a later one
LEGACY_CARRIED = ":"  # the separator of older curriculum folders (not a portable file name), read as CARRIED


# --- reading ------------------------------------------------------------------------------------------------------
def read_json(path: Path, missing_fix: str | None = None) -> dict:
    """A run file's JSON; a missing or broken file is one UserError (`missing_fix`: what to do when it is absent)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        fix = f": {missing_fix}" if missing_fix else f"; is {path.parent} a groklab run directory?"
        raise UserError(f"{path} is missing{fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); restore or delete the run") from None


def is_run(path: Path) -> bool:
    """Whether `path` holds a run: its config is written first, before anything trains."""
    return (path / CONFIG).is_file()


def read_config(run_dir: Path) -> config.RunConfig:
    return config.from_dict(read_json(run_dir / CONFIG))


def read_summary(run_dir: Path) -> dict | None:
    """summary.json, or None while the run has not finished once."""
    path = run_dir / SUMMARY
    return read_json(path) if path.is_file() else None


def is_finished(run_dir: Path) -> bool:
    """A final summary.json that covers the newest checkpoint (`finished`)."""
    return finished(read_summary(run_dir), run_dir)


def finished(summary: dict | None, run_dir: Path) -> bool:
    """Whether `summary` is final and covers the run's newest checkpoint. A summary older than a checkpoint belongs
    to an earlier end of a run that has been resumed (and trains on), so that run is not finished; nor is one
    paused before the end of its schedule (`Trainer.run(stop_at=...)`, summary "paused")."""
    final = summary.get("final_step") if summary else None
    return final is not None and not summary.get("paused") and final >= max(list_steps(run_dir), default=0)


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl; a torn last line (killed mid-write) is ignored."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


def analysis_file(run_dir: Path, method: str, probe: str, suffix: str = ".json") -> Path:
    """`analysis/<method>-<probe><suffix>`: an analysis's JSON, or (suffix `.png`, `-curves.png`) a figure of it."""
    return run_dir / ANALYSIS_DIR / f"{method}-{probe}{suffix}"


def read_analyses(run_dir: Path, method: str) -> list[dict]:
    """Every JSON `method` wrote into the run (one per analysed probe), in file-name order."""
    return [read_json(path) for path in sorted((run_dir / ANALYSIS_DIR).glob(f"{method}-*.json"))]


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CKPT_DIR / f"step_{step:07d}"


def list_steps(run_dir: Path) -> list[int]:
    """Steps of the run's checkpoint folders, oldest first (whether each verifies is `checkpoint.verify`'s job)."""
    root = run_dir / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in root.glob("step_*") if p.name[5:].isdigit())


def load_task_data(cfg: config.RunConfig, data_dir: str | None) -> TaskData:
    """Generate the task from its config, or read a dataset folder (groklab or paper format)."""
    sizes.check_run(cfg)  # one error line, before anything is built, for a size this machine cannot hold
    return load_dataset(Path(data_dir)) if data_dir else generate(cfg.data)


def open_run(run_dir: Path) -> tuple[config.RunConfig, TaskData]:
    """A run's resolved config and the data it trains on (regenerated from the config, or read from the
    folder it used), for the trainer's resume and for every reader."""
    cfg = read_config(run_dir)
    source = read_json(run_dir / META).get("data_source", {})
    return cfg, load_task_data(cfg, source.get("dir"))


# --- a run read back: the one object every reader gets ------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """A run folder read back, the one way every reader sees a run (the API's `Run`, reports, the claims table,
    warm starts): config.json as written and summary.json (None until the run first ends), and on demand its
    metrics, its flattened config, its statistics so far and any other JSON file of the folder (analysis/...)."""

    path: Path
    config: dict  # config.json as written: {"data": {"task": ..., ...}, "model": {...}, ...}
    summary: dict | None
    files: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # `read`'s, each read once

    @cached_property
    def metrics(self) -> list[dict]:
        """The rows of metrics.jsonl (`read_metrics`)."""
        return read_metrics(self.path)

    @property
    def finished(self) -> bool:
        return finished(self.summary, self.path)

    @cached_property
    def flat_config(self) -> dict[str, Any]:
        """`{"data.phi": 12.6, ...}`, read through the config classes (`comparable`)."""
        return comparable(config.from_dict(self.config))

    def stats(self) -> dict:
        """summary.json's fields: a finished run's summary, else detected from the metrics logged so far the way
        the trainer detects them, so a report on a live sweep (or a warm start from a live run) reads its progress."""
        if self.finished:
            return self.summary
        flat, rows = self.flat_config, self.metrics
        last = rows[-1] if rows else {}
        roles = task_roles(flat["data.task"], rows)
        return summarize(rows, roles, flat["train.fit_threshold"], flat["train.grok_threshold"]) | {
            "final_step": last.get("step", 0),
            "elapsed_s": last.get("elapsed_s", 0.0),
        }

    def read(self, name: str, missing_fix: str | None = None) -> Any:
        """The run's JSON file `name` (relative to its folder: `analysis/tree-projection-gen.json`), read once."""
        if name == SUMMARY and self.summary is not None:
            return self.summary
        if name not in self.files:
            self.files[name] = read_json(self.path / name, missing_fix)
        return self.files[name]


def load_run(run_dir: Path, missing_fix: str | None = None) -> RunRecord:
    """The run in `run_dir`, read back. `missing_fix`: the run must have ended, and a missing summary.json or
    config.json is an error that says this (the claims table's committed runs); otherwise a run without a summary
    yet reads as unfinished."""
    summary = read_json(run_dir / SUMMARY, missing_fix) if missing_fix else read_summary(run_dir)
    return RunRecord(run_dir, read_json(run_dir / CONFIG, missing_fix), summary)


def comparable(cfg: config.RunConfig) -> dict[str, Any]:
    """A config flattened (`{"data.phi": 12.6, ...}`) after a JSON round trip, so that tuples (betas) equal the lists
    a config.json holds; built through the config classes, so a field added since a run was made reads at its
    default and does not look like a difference."""
    return config.flatten(json.loads(json.dumps(cfg.to_dict())))


def task_roles(task: str, rows: list[dict]) -> dict[str, str]:
    """The task's probe roles (as summary.json would give them) for an unfinished run: those of its TaskSpec
    whose probe has been logged (empty probes never are)."""
    if task not in TASKS:
        raise UserError(f"unknown data.task={task!r} in a run's {CONFIG}")
    present = {k.removesuffix("/acc") for r in rows for k in r}
    return {role: probe for role, probe in TASKS[task].roles.items() if probe in present or not rows}


# --- names made of values: sweep runs, carried probes ---------------------------------------------------------------
def format_value(value: Any) -> str:
    """A value as it reads in a run folder's name: 9.0 → 9, 1e-4 → 0.0001, [0.9, 0.98] → 0.9_0.98, 'ema' → ema."""
    if isinstance(value, list | tuple):
        return "_".join(format_value(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", value if isinstance(value, str) else config.format_value(value))


def short_names(keys: list[str]) -> dict[str, str]:
    """`data.phi` → `phi`, unless another key has the same last part (`data.seed`, `train.seed`)."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def run_name(overrides: dict[str, Any], names: dict[str, str] | None = None, sep: str = ",") -> str:
    """A sweep run's folder name, its grid point: `phi=3.6,seed=0`; keys by `names` (default: their `short_names`).
    Reports label groups of runs the same way."""
    names = names or short_names(list(overrides))
    return sep.join(f"{names[k]}={format_value(v)}" for k, v in overrides.items())


def portable(name: str) -> str:
    """A probe or metric name with an older folder's `<stage>:<probe>` spelt as now, `<stage>--<probe>`."""
    return name.replace(LEGACY_CARRIED, CARRIED)


def carried_name(stage: str, probe: str) -> str:
    """What `stage`'s probe is called in later stages: `<stage>--<probe>`, or its own name when `stage` carried it
    from an earlier stage itself (it is named after the stage it belongs to)."""
    probe = portable(probe)
    return probe if CARRIED in probe else f"{stage}{CARRIED}{probe}"


def earlier_probe_key(rows: list[dict], stage: str, probe: str) -> str | None:
    """The metric key under which a later stage's `rows` log `stage`'s `probe`: its carried name, or, when the
    later stage holds the same facts itself (same task and data seed, so the probe was not carried twice), its
    own probe of that name; None when the later stage does not evaluate it."""
    for key in (f"{carried_name(stage, probe)}/acc", f"{portable(probe)}/acc"):
        if any(key in r for r in rows):
            return key
    return None


# --- writing a run ------------------------------------------------------------------------------------------------
def write_summary(run_dir: Path, summary: dict) -> Path:
    return write_json(run_dir / SUMMARY, summary)


def rewrite_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Replace metrics.jsonl atomically (used on resume to drop rows past the checkpoint)."""
    write_text(run_dir / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def append_metrics(run_dir: Path, row: dict) -> None:
    """One evaluation; a line torn by a kill is dropped by `read_metrics`, so appending needs no rename."""
    with (run_dir / METRICS).open("a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(groklab.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def meta(device: Any, data_source: dict, threads: int) -> dict:
    """Where and with what the run was made; `threads` is what the trainer will set, not the current count."""
    import torch  # the trainer has loaded it already; readers of a run never need it

    return {
        "groklab": groklab.__version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "threads": threads,
        "data_source": data_source,
    }


def check_new(run_dir: Path) -> None:
    """Refuse to mix two runs in one folder."""
    # dot-files are a dead start's leftovers (temp files, lock), not a run
    if run_dir.exists() and (not run_dir.is_dir() or any(not p.name.startswith(".") for p in run_dir.iterdir())):
        raise UserError(
            f"{run_dir} already exists and is not empty; "
            f"use `groklab train --resume {run_dir}` or pick another --out"
        )


def lock(run_dir: Path):
    """Hold an exclusive lock on the run while training: a second writer is refused. The OS drops the
    lock when the holder dies, so a killed run never blocks its own resume."""
    handle = (run_dir / LOCK).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"{run_dir} is being trained by another process; wait for it or stop it before resuming"
        ) from None
    return handle
