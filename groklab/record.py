"""Copy a finished run's or sweep's light records into a folder that is committed (docs/runs/NAME), so every number
of the claims table keeps its run when the scratch folder with the checkpoints is gone.

    groklab record runs/weight-decay-cpu docs/runs/weight-decay-cpu
    groklab report docs/runs/weight-decay-cpu          # the sweep's figures, drawn from the records alone

Per finished run (a folder with summary.json): summary.json, config.json, meta.json, metrics.jsonl and the
accuracy figure; per sweep, sweep.json. Never checkpoints, datasets or logs. A run still training (no summary.json
yet) is left out and named, so a half-run is never committed as if finished. Every file is written to a temp file
and renamed, and a second call overwrites with the newer records (a resumed sweep adds its new runs).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from groklab import runs
from groklab.errors import UserError

RUN_RECORDS = ("summary.json", "config.json", "meta.json", "metrics.jsonl", "accuracy.png")
SWEEP_RECORDS = ("sweep.json",)


@dataclass
class Recorded:
    runs: list[str] = field(default_factory=list)  # run folders copied, relative to the source
    unfinished: list[str] = field(default_factory=list)  # run folders without summary.json (left out)


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic(dst) as tmp:
        shutil.copyfile(src, tmp)


def is_unfinished_run(folder: Path) -> bool:
    """A run's config and meta are written before it trains; summary.json when it ends. (An export folder has a
    config.json too, but no meta.json.)"""
    return runs.is_run(folder) and (folder / "meta.json").exists() and not (folder / "summary.json").exists()


def record(src: Path, dst: Path) -> Recorded:
    """Copy the light records of every finished run under `src` (or `src` itself) to the same relative paths
    under `dst`."""
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; give a run or sweep folder (e.g. runs/weight-decay-cpu)")
    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"the destination {dst} is inside {src}; record into a separate folder (docs/runs/NAME)")
    out = Recorded()
    for summary in sorted(src.rglob("summary.json")):
        run = summary.parent
        rel = run.relative_to(src)
        for name in RUN_RECORDS:
            if (run / name).exists():
                copy_file(run / name, dst / rel / name)
        out.runs.append(str(rel))
    configs = src.rglob(runs.CONFIG)
    out.unfinished = sorted(str(p.parent.relative_to(src)) for p in configs if is_unfinished_run(p.parent))
    if not out.runs:
        raise UserError(f"{src} has no finished run (no summary.json below it); train or sweep first")
    for name in SWEEP_RECORDS:
        for path in src.rglob(name):
            copy_file(path, dst / path.relative_to(src))
    return out
