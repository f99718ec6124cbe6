"""A run is a self-describing directory, and this module is its one owner:

    config.json    fully resolved config          meta.json      versions, git sha, device, data source
    metrics.jsonl  one object per evaluation      summary.json   fit/grok steps and final accuracies
    ckpt/step_*/   atomic checkpoints             accuracy.png   every probe's accuracy vs step
    analysis/      <method>-<probe>.json and its figures (`groklab analyze`)
    tensorboard/   wandb/                        mirrors of metrics.jsonl (`groklab.trackers`), ledger .mirrored.json
    llm-eval.json  LLMs scored on the run's queries beside its own model (`groklab llm-eval`)

It names these files (once, below), opens a run for reading (config, summary, metrics, analysis files, the
data it trained on), says when a run is finished, and holds the one atomic writer that every file goes through.
Readers (analysis, export, sweeps, reports) come here, never to the trainer: stages talk through the
directory, which is why reports work on live sweeps and resume is exact. Nothing here imports torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import groklab
from groklab import config
from groklab.errors import UserError

if TYPE_CHECKING:
    from groklab.tasks.dataset import TaskData

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


# --- the one atomic writer ------------------------------------------------------------------------------------
def temp_sibling(path: Path) -> Path:
    """A temp name beside `path`: the same folder (so the rename is atomic), a leading dot (never taken for a
    run file), the process id (two writers never share one) and `path`'s own name last (matplotlib picks the
    image format from the suffix)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Write to the yielded temp file; on success one rename puts it at `path`, so a reader (a report on a live
    sweep, a resume after kill -9) sees the old file or the new one, never half of one. A write that fails
    (disk full) leaves no temp file."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_figure(fig: Any, path: Path, dpi: float) -> Path:
    """A matplotlib figure, in the format of `path`'s suffix (PNG); the caller closes the figure."""
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


@contextmanager
def atomic_dir(final: Path, replace: bool = False) -> Iterator[Path]:
    """Fill the yielded temp folder; on success it is renamed to `final`, so `final` is whole or absent (a
    checkpoint, an export, a dataset). `replace`: an existing `final` is swapped out (renamed aside, the new
    folder renamed in, then the old one deleted), so the old one stays whole until the new one is in place (a
    checkpoint saved again, a dataset regenerated); otherwise `final` must be absent or empty: never delete what
    someone else put there. Leftovers of a crash are dot-folders named like `temp_sibling`'s."""
    tmp = temp_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    old = temp_sibling(final.with_name(f"{final.name}.old"))
    try:
        yield tmp
        if replace and final.exists():
            os.replace(final, old)
        elif final.exists():
            final.rmdir()
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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
    """A final summary.json that covers the newest checkpoint. A summary older than a checkpoint belongs to an
    earlier end of a run that has been resumed (and trains on), so that run is not finished; nor is one paused
    before the end of its schedule (`Trainer.run(stop_at=...)`, summary "paused")."""
    summary = read_summary(run_dir)
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
    if data_dir:
        from groklab.tasks.io import load_dataset

        return load_dataset(Path(data_dir))
    from groklab.tasks import generate

    return generate(cfg.data)


def open_run(run_dir: Path) -> tuple[config.RunConfig, TaskData]:
    """A run's resolved config and the data it trains on (regenerated from the config, or read from the
    folder it used), for the trainer's resume and for every reader."""
    cfg = read_config(run_dir)
    source = read_json(run_dir / META).get("data_source", {})
    return cfg, load_task_data(cfg, source.get("dir"))


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
    import numpy as np
    import torch

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
