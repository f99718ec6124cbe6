"""A curriculum's report: CURRICULUM_DIR/report/ with index.html (the stages' table, forgetting, every
stage on one step axis, each stage's own curves) and summary.txt. Reads the curriculum folder only, like
groklab/report.py, whose table and page helpers it uses; `groklab curriculum` writes it after the last stage.

Forgetting: for every later stage and every earlier stage's train and grok probes, the earlier probe's accuracy
when the later stage starts, its lowest during it, and at its end (metrics `<stage>--<probe>/acc`).
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

from groklab import runs
from groklab.figures.accuracy import accuracy_curves
from groklab.figures.curriculum import curriculum_figure
from groklab.grokking import fit_probes, grok_probe
from groklab.report import format_table, html_figure, html_page, html_table, show, table
from groklab.results import RunResult
from groklab.runs import PLAN, REPORT_DIR, carried_name, earlier_probe_key, portable

FORGETTING = ["stage", "earlier probe", "acc at start", "lowest", "at end"]


def load_stages(out: Path) -> tuple[dict, list[RunResult]]:
    """The plan and the stages started so far, in order; metric keys of older folders (`<stage>:<probe>`) are
    read under their current names."""
    plan = runs.read_json(out / PLAN, f"{out} is not a curriculum folder; run `groklab curriculum FILE --out {out}`")
    results = [RunResult.of(runs.load_run(out / s["name"]), s["name"]) for s in plan["stages"]
               if runs.is_run(out / s["name"])]
    return plan, [dataclasses.replace(r, rows=[{portable(k): v for k, v in row.items()} for row in r.rows])
                  for r in results]


def forgetting(results: list[RunResult]) -> list[list[str]]:
    """Rows of the FORGETTING table: each later stage × each earlier stage's train and grok probes."""
    rows = []
    for i, r in enumerate(results):
        for earlier in results[:i]:
            roles = earlier.stats["roles"]
            for probe in dict.fromkeys([fit_probes(roles)[0], grok_probe(roles)]):
                key = earlier_probe_key(r.rows, earlier.name, probe)
                values = [row[key] for row in r.rows if key in row] if key else []
                if values:
                    rows.append([r.name, carried_name(earlier.name, probe),
                                 *(show(v, 3) for v in (values[0], min(values), values[-1]))])
    return rows


def started_from(run_dir: Path) -> str:
    parent = runs.read_json(run_dir / runs.META).get("init_from")
    return f"{Path(parent['run']).name} @ {parent['step']}" if parent else "random init"


def write(out: Path) -> Path:
    """The report of the curriculum folder `out`; returns index.html's path."""
    plan, results = load_stages(out)
    dest = out / REPORT_DIR
    dest.mkdir(parents=True, exist_ok=True)
    stages = [(r.name, r.rows, r.stats["roles"]) for r in results]
    overview = curriculum_figure(stages, dest / "curriculum.png", title=f"curriculum {plan['name']}")
    curves = [accuracy_curves(r.rows, r.stats["roles"], dest / f"accuracy-{r.name}.png", r.name, r.stats)
              for r in results]
    header, rows = table(results, ["data.task"])
    header, rows = [*header, "started from"], [[*row, started_from(r.run_dir)]
                                               for row, r in zip(rows, results, strict=True)]
    lost = forgetting(results)
    text = format_table(header, rows) + (f"\n\n{format_table(FORGETTING, lost)}" if lost else "")
    runs.write_text(dest / "summary.txt", text + "\n")
    e = html.escape
    parts = [f"<h1>curriculum {e(plan['name'])}</h1><p class=meta>{len(results)} of {len(plan['stages'])} stages "
             f"started, in {e(str(out))}</p><h2>Stages</h2>{html_table(header, rows)}"]
    if lost:
        parts.append(f"<h2>Forgetting</h2>{html_table(FORGETTING, lost)}<p class=meta>each earlier stage's train "
                     "and grok probes, evaluated in every later stage: accuracy at its start, lowest, at its end</p>")
    parts.append(html_figure(overview, "all stages on one step axis"))
    parts += [html_figure(png, r.name) for png, r in zip(curves, results, strict=True)]
    return runs.write_text(dest / "index.html", html_page(f"curriculum {plan['name']}", parts))
