"""Run results as a report reads them: each run's flattened config, metrics and grokking statistics, from run
and sweep directories read back by `groklab.runs` (`RunResult.of(runs.load_run(path))`). Data only;
`groklab.figures` draws it, `groklab.report` tabulates it. Works on sweeps that are still training: an unfinished
run's statistics come from the metrics it has logged so far.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from groklab import runs
from groklab.errors import UserError
from groklab.grokking import NEVER, delay_epochs
from groklab.runs import IGNORED_WHEN_COMPARING, MANIFEST, METHOD

GROKKED, NEVER_GROKKED, UNFINISHED = "grokked", f"{NEVER} grokked", "unfinished"  # RunResult.state


@dataclass(frozen=True)
class RunResult:
    """One run as its files describe it. `stats` has summary.json's fields; while the run is unfinished they
    are detected from metrics.jsonl the same way, so a live sweep reports what it has so far."""

    name: str
    run_dir: Path
    config: dict[str, Any]  # flattened config.json: {"data.phi": 12.6, ...}
    rows: list[dict]
    stats: dict
    finished: bool

    @property
    def state(self) -> str:
        if self.stats.get("grok_step") is not None:
            return GROKKED
        return NEVER_GROKKED if self.finished else UNFINISHED

    def delay(self) -> tuple[int | None, float | None]:
        """The memorise → generalise delay in steps and in epochs: from the train probe reaching the grok level
        to the grok probe reaching it (Wang et al.'s delay; summary.json's delay_steps and delay_epochs). Not
        grok − fit: fit waits for every training probe, and the OOD atomic facts can be memorised after the grok.
        Summaries written before delay_epochs existed get it from the logged epochs."""
        s = self.stats
        steps, epochs = s.get("delay_steps"), s.get("delay_epochs")
        if steps is not None and epochs is None:
            epochs = delay_epochs(self.rows, s)
        return steps, epochs

    def final_acc(self, role: str) -> float | None:
        probe = self.stats["roles"].get(role)
        return self.stats["final"].get(probe)

    @classmethod
    def of(cls, run: runs.RunRecord, name: str | None = None) -> RunResult:
        """A run read back (`runs.load_run`) as a report sees it; `name` defaults to its folder's."""
        return cls(name or run.path.name, run.path, run.flat_config, run.metrics, run.stats(), run.finished)


def collect(paths: list[Path]) -> tuple[list[RunResult], list[str], list[dict], list[str]]:
    """Runs, swept keys, sweep manifests and names of sweep runs not started yet, from run or sweep folders.
    Swept keys come from sweep.json; for loose runs they are the config keys whose values differ."""
    results, keys, sweeps, missing = [], [], [], []
    for path in paths:
        if (path / MANIFEST).is_file():
            manifest = runs.read_json(path / MANIFEST)
            sweeps.append(manifest)
            keys += [k for k in manifest["keys"] if k not in keys]
            for run in manifest["runs"]:
                run_dir = path / run["dir"]
                if runs.is_run(run_dir):
                    result = RunResult.of(runs.load_run(run_dir), run["name"])
                    method = run["overrides"].get(METHOD)  # a sweep's [methods]: the run's method by name
                    if method is not None:
                        result = replace(result, config={METHOD: method} | result.config)
                    # a swept key the config now reads under other names (config.LEGACY_KEYS): the sweep's own value
                    legacy = {k: v for k, v in run["overrides"].items() if k not in result.config}
                    result = replace(result, config=result.config | legacy) if legacy else result
                    results.append(result)
                else:
                    missing.append(run["name"])
        elif runs.is_run(path):
            results.append(RunResult.of(runs.load_run(path)))
        else:
            raise UserError(
                f"{path} is neither a run directory ({runs.CONFIG}) nor a sweep directory ({MANIFEST})"
            )
    if not sweeps and len(results) > 1:
        every = sorted({k for r in results for k in r.config} - IGNORED_WHEN_COMPARING)
        keys = [k for k in every if len({json.dumps(r.config.get(k)) for r in results}) > 1]
    return unique_names(results), keys, sweeps, missing


def unique_names(results: list[RunResult]) -> list[RunResult]:
    """Two runs of the same folder name (from different sweeps) get " (2)", " (3)" ... appended."""
    seen: dict[str, int] = {}
    out = []
    for r in results:
        seen[r.name] = seen.get(r.name, 0) + 1
        out.append(r if seen[r.name] == 1 else replace(r, name=f"{r.name} ({seen[r.name]})"))
    return out
