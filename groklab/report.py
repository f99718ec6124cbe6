"""Reports: one self-contained HTML page (figures embedded as base64, the same PNGs beside it) from run and
sweep directories. Reads files only; never trains, so it works on a sweep that is still running. The runs'
data come from `groklab.results`, the figures from `groklab.figures`; this module makes the table and page.

    groklab report runs/phi-cpu                  # → runs/phi-cpu/report/index.html + PNGs
    groklab report runs/a runs/b --out reports/ab
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from groklab import method_stats, runs
from groklab.errors import UserError
from groklab.figures.accuracy import accuracy_curves
from groklab.figures.across_runs import accuracy_figure, grok_figure, tree_figure
from groklab.figures.methods import steps_figure
from groklab.results import RunResult, collect
from groklab.runs import METHOD, format_value, short_names
from groklab.stats import BOOTSTRAP_SAMPLES


# --- the summary table --------------------------------------------------------------------------------------
def show(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else format_value(value)


def baselines(result: RunResult) -> str:
    """What the test accuracies must be read against: per test probe, its label prior (`no_information`) and,
    for comparison and complex, the ranking shortcut (`shortcut`), as summary.json gives them."""
    prior, shortcut = result.stats.get("no_information", {}), result.stats.get("shortcut", {})
    parts = []
    for role in ("test_id", "test_ood"):
        probe = result.stats.get("roles", {}).get(role)
        levels = [f"{name} {src[probe]:.3f}" for name, src in (("prior", prior), ("shortcut", shortcut))
                  if probe in src]
        if levels:
            parts.append(f"{role}: {', '.join(levels)}")
    return "; ".join(parts) or "—"


def table(results: list[RunResult], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: run, swept values, state, fit/grok steps, memorise → grok delay, final accuracies and the
    levels to read them against, time."""
    short = short_names(keys)
    header = ["run", *(short[k] for k in keys), "state", "fit step", "grok step", "delay (steps)",
              "delay (epochs)", "train acc", "test_id acc", "test_ood acc", "baselines", "steps", "time (s)"]
    rows = []
    for r in results:
        steps, epochs = r.delay()
        s = r.stats
        rows.append([
            r.name, *(show(r.config.get(k)) for k in keys), r.state, show(s.get("fit_step")), show(s.get("grok_step")),
            show(steps), show(epochs, 1), *(show(r.final_acc(role), 3) for role in ("train", "test_id", "test_ood")),
            baselines(r), show(s.get("final_step")),
            show(None if s.get("elapsed_s") is None else round(s["elapsed_s"])),
        ])
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table, columns padded to their widest cell (for the terminal)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# --- the page -----------------------------------------------------------------------------------------------------
def html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table, every cell escaped (the summary, the methods and the LLM tables)."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in name)


def write(paths: list[Path], out: Path | None = None) -> Path:
    """Figures and index.html for these run / sweep directories; returns the HTML's path."""
    if out is None:
        if len(paths) != 1:
            raise UserError("give --out DIR when reporting several directories")
        out = paths[0] / "report"
    results, keys, sweeps, missing = collect(paths)
    if not results:
        raise UserError(f"no run in {', '.join(map(str, paths))} has started yet; nothing to report")
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    compared = methods_section(results, keys, sweeps, out) if METHOD in keys else ""
    # with [methods], the method is the one axis: each method's own settings are in its section
    for key in [METHOD] if compared else [k for k in keys if not k.endswith(".seed")] or keys:
        png = out / f"grok-vs-{file_name(key)}.png"
        figures.append((f"grokking against {key}", grok_figure(results, key, keys, png)))
        png = out / f"accuracy-vs-{file_name(key)}.png"
        figures.append((f"accuracy against {key}", accuracy_figure(results, key, png)))
        tree_png = tree_figure(results, key, out / f"tree-projection-vs-{file_name(key)}.png")
        if tree_png:
            figures.append((f"tree-structuredness against {key} and step", tree_png))
    curves = []
    for r in results:
        png = out / f"accuracy-{file_name(r.name)}.png"
        accuracy_curves(r.rows, r.stats["roles"], png, title=r.name, summary=r.stats)
        curves.append((r.name, png))
    page = render(paths, results, keys, sweeps, missing, figures, curves, compared)
    return runs.write_text(out / "index.html", page)


def methods_section(results: list[RunResult], keys: list[str], sweeps: list[dict], out: Path) -> str:
    """HTML for a sweep with [methods]: the per-variant table over seeds and the steps-to-grok figures."""
    every = method_stats.variants(results, keys)
    best = method_stats.best_per_method(every)
    baseline = next((s.get("baseline") for s in sweeps if s.get("baseline")), None)
    header, rows = method_stats.table(every, baseline)
    runs.write_text(out / "methods.txt", format_table(header, rows) + "\n")
    best_png = steps_figure(best, out / "steps-to-grok-by-method.png", "steps to grok, each method at its best setting")
    all_png = steps_figure(every, out / "steps-to-grok-by-setting.png", "steps to grok, every method and setting")
    return (f"<h2>Methods over seeds</h2>{html_table(header, rows)}<p class=meta>★ the method's best "
            "setting (most seeds grokked, then fewest median steps); a seed that never grokked counts as +inf steps, "
            "so a median of “&gt; budget” means half or more never grokked; intervals are percentile bootstraps over "
            f"seeds ({BOOTSTRAP_SAMPLES:,} resamples).</p>"
            f"<figure>{img(best_png, 'best setting per method')}</figure>"
            f"<figure>{img(all_png, 'every setting')}</figure>")


def llm_section(results: list[RunResult]) -> str:
    """HTML for the runs that have llm-eval.json (`groklab llm-eval`): each LLM's accuracy beside the run's own
    model's on the same queries (Wang et al. §5's parametric vs non-parametric memory); empty when none has."""
    header = ["run", "model", "split", "context", "CoT", "queries", "LLM acc", "unparseable", "undecided",
              "grokked acc", "grokked step"]
    rows = []
    for r in results:
        path = r.run_dir / runs.LLM_EVAL
        for ev in runs.read_json(path)["evaluations"] if path.is_file() else []:
            g = ev.get("grokked") or {}
            context = ev["context"] + (f" (k={ev['k']})" if ev.get("k") is not None else "")
            rows.append([r.name, ev["model"], ev["split"], context, "yes" if ev["cot"] else "no", show(ev["n"]),
                         show(ev["accuracy"], 3), show(ev["unparseable"]), show(ev["undecided"]),
                         show(g.get("accuracy"), 3), show(g.get("step"))])
    if not rows:
        return ""
    return (f"<h2>LLMs beside the grokked model</h2>{html_table(header, rows)}<p class=meta>the same "
            "queries: an LLM given the facts in its context (all, or the k a BM25 retriever finds) against the "
            "run's model, which holds them in its weights; unparseable and undecided replies count as wrong.</p>")


def img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" title="{html.escape(png.name)}">'


def html_figure(png: Path, caption: str) -> str:
    """A PNG embedded with its caption (escaped)."""
    return f"<figure>{img(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


PAGE_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
              "font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:"
              "left}th{background:#f3f3f3}img{max-width:100%}.grid{display:grid;grid-template-columns:repeat("
              "auto-fill,minmax(520px,1fr));gap:1em}figure{margin:0}figcaption{font-size:13px;color:#444}"
              ".meta{color:#666}")


def html_page(title: str, parts: list[str]) -> str:
    """A self-contained page: `parts` (HTML, already escaped) under one style (this report and the curriculum's)."""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def render(paths: list[Path], results: list[RunResult], keys: list[str], sweeps: list[dict], missing: list[str],
           figures: list[tuple[str, Path]], curves: list[tuple[str, Path]], compared: str = "") -> str:
    e = html.escape
    header, rows = table(results, keys)
    parts = [f"<h1>groklab report</h1><p class=meta>{e(time.strftime('%Y-%m-%d %H:%M'))} · "
             f"{len(results)} runs from {e(', '.join(map(str, paths)))}</p>"]
    for s in sweeps:
        grid = "; ".join(f"{k} = {json.dumps(v)}" for k, v in s["grid"].items())
        fixed = "; ".join(f"{k} = {json.dumps(v)}" for k, v in s["fixed"].items()) or "none"
        parts.append(f"<h2>sweep {e(s['name'])}</h2><p>{e(s.get('description', ''))}</p><p><b>base</b> "
                     f"<code>{e(Path(s['base']).name)}</code> · <b>grid</b> <code>{e(grid)}</code> · "
                     f"<b>fixed</b> <code>{e(fixed)}</code></p>")
    if missing:
        parts.append(f"<p>not started yet: {e(', '.join(missing))}</p>")
    parts.append(f"<h2>Summary</h2>{html_table(header, rows)}<p class=meta>fit: train probe ≥ "
                 "train.fit_threshold; grok: the grok probe ≥ train.grok_threshold (test_id; for sequence tasks "
                 "the generalisation split gen, and their test_id / test_ood columns are test / gen); "
                 "delay: from the train probe reaching the grok level to the grok probe reaching it (Wang et "
                 "al.'s delay; fit waits for every training probe, and OOD atomic facts can be memorised after "
                 "the grok).</p>")
    parts.append(compared)
    parts.append(llm_section(results))
    if figures:
        parts.append("<h2>Grokking against the swept variables</h2>")
        parts += [html_figure(png, title) for title, png in figures]
    parts.append("<h2>Accuracy curves</h2><div class=grid>")
    parts += [html_figure(png, name) for name, png in curves]
    parts.append("</div>")
    return html_page("groklab report", parts)
