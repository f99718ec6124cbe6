"""Copy a finished run's or sweep's light records into a folder that is committed (docs/runs/NAME), so every number
of the claims table keeps its run when the scratch folder with the checkpoints is gone.

    groklab record runs/weight-decay-cpu docs/runs/weight-decay-cpu
    groklab record runs/weight-decay-cpu docs/runs/weight-decay-cpu --figures   # + each run's figures, redrawn
    groklab report docs/runs/weight-decay-cpu          # the sweep's figures, drawn from the records alone

Per finished run (a final summary.json): summary.json, config.json, meta.json, metrics.jsonl and the JSON of the
run's analyses (`analysis/`); per sweep, sweep.json. Records are data, figures are views: no PNG is copied (a
clone stays mostly code), and `--figures` draws each run's accuracy.png and analysis figures again from the
records copied, as `groklab report` draws any run's. Never checkpoints, datasets or logs. A run still training (no
summary.json, or one older than its newest checkpoint) is left out and named, so a half-run is never committed
as if finished. Every file is written to a temp file and renamed, and a second call overwrites with the newer
records (a resumed sweep adds its new runs).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from groklab import runs
from groklab.analysis import methods
from groklab.errors import UserError
from groklab.figures.accuracy import run_accuracy_figure

RUN_RECORDS = (runs.SUMMARY, runs.CONFIG, runs.META, runs.METRICS)  # what cannot be recomputed without training
ANALYSIS_RECORDS = "*.json"  # `groklab analyze`'s results; its figures are drawn from them


@dataclass
class Recorded:
    runs: list[str] = field(default_factory=list)  # run folders copied, relative to the source
    unfinished: list[str] = field(default_factory=list)  # run folders not finished (left out)
    figures: list[Path] = field(default_factory=list)  # figures drawn (--figures)


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic(dst) as tmp:
        shutil.copyfile(src, tmp)


def record(src: Path, dst: Path, figures: bool = False) -> Recorded:
    """Copy the light records of every finished run under `src` (or `src` itself) to the same relative paths
    under `dst`; with `figures`, draw each copied run's figures from its records. A run is a folder with
    config.json and meta.json (an export folder has a config.json too, but no meta.json); finished as
    `runs.is_finished` says (a resumed run training on has an older summary)."""
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; give a run or sweep folder (e.g. runs/weight-decay-cpu)")
    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"the destination {dst} is inside {src}; record into a separate folder (docs/runs/NAME)")
    out = Recorded()
    folders = sorted(p.parent for p in src.rglob(runs.CONFIG) if (p.parent / runs.META).is_file())
    for run in folders:
        rel = run.relative_to(src)
        if not runs.is_finished(run):
            out.unfinished.append(str(rel))
            continue
        for name in RUN_RECORDS:
            if (run / name).exists():
                copy_file(run / name, dst / rel / name)
        for path in sorted((run / runs.ANALYSIS_DIR).glob(ANALYSIS_RECORDS)):
            copy_file(path, dst / rel / runs.ANALYSIS_DIR / path.name)
        out.runs.append(str(rel))
    if not out.runs:
        raise UserError(f"{src} has no finished run (no final summary.json below it); train or sweep first")
    for path in src.rglob(runs.MANIFEST):
        copy_file(path, dst / path.relative_to(src))
    if figures:
        out.figures = [png for rel in out.runs for png in draw_figures(dst / rel)]
    return out


def draw_figures(run_dir: Path) -> list[Path]:
    """A finished run's accuracy.png and its analyses' figures, drawn from its metrics.jsonl, summary.json and
    analysis JSON alone (what a record keeps)."""
    summary, metrics = runs.read_summary(run_dir), runs.read_metrics(run_dir)
    drawn = [run_accuracy_figure(run_dir, summary, f"{run_dir.parent.name}/{run_dir.name}")]  # as a sweep titles it
    for path in sorted((run_dir / runs.ANALYSIS_DIR).glob(ANALYSIS_RECORDS)):
        analysis = runs.read_json(path)
        entry = methods.get(analysis["method"])
        for suffix, figure in entry.figures:
            png = runs.analysis_file(run_dir, entry.name, analysis["split"], suffix)
            drawn.append(methods.load(figure)(analysis, metrics, summary, png))
    return drawn
