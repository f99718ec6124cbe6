"""A run is a self-describing directory:

    config.json    fully resolved config          meta.json      versions, git sha, device, data source
    metrics.jsonl  one object per evaluation      summary.json   fit/grok steps and final accuracies
    ckpt/step_*/   atomic checkpoints             accuracy.png   train / test_id / test_ood vs step

Every JSON file is written to a temp file and renamed, so none is ever half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import groklab
from groklab.errors import UserError


def write_json(path: Path, obj: object) -> None:
    """Atomic JSON write: temp file in the same folder, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; is {path.parent} a groklab run directory?") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); restore or delete the run") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl; a torn last line (killed mid-write) is ignored."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


def rewrite_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Replace metrics.jsonl atomically (used on resume to drop rows past the checkpoint)."""
    path = run_dir / "metrics.jsonl"
    tmp = path.with_name(f".metrics.jsonl.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    os.replace(tmp, path)


def append_metrics(run_dir: Path, row: dict) -> None:
    with (run_dir / "metrics.jsonl").open("a") as f:
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


def meta(device: torch.device, data_source: dict, threads: int) -> dict:
    """Where and with what the run was made; `threads` is what the trainer will set, not the current count."""
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
    handle = (run_dir / ".lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"{run_dir} is being trained by another process; wait for it or stop it before resuming"
        ) from None
    return handle
