"""Reports: one self-contained HTML page (figures embedded as base64, the same PNGs beside it) from run and
sweep directories. Reads files only; never trains, so it works on a sweep that is still running.

    groklab report runs/phi-cpu                  # → runs/phi-cpu/report/index.html + PNGs
    groklab report runs/a runs/b --out reports/ab
"""

from __future__ import annotations

import base64
import html
import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import runs
from groklab.errors import UserError
from groklab.schedule import summarize
from groklab.sweep import IGNORED_WHEN_COMPARING, flatten, format_value, short_names


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
        grokked = self.stats.get("grok_step") is not None
        return "grokked" if grokked else "never grokked" if self.finished else "unfinished"

    def delay(self) -> tuple[int | None, float | None]:
        """fit → grok delay in steps and in epochs (negative when test reaches its level before train fits)."""
        s = self.stats
        steps = s["grok_step"] - s["fit_step"] if s.get("grok_step") is not None and s.get("fit_step") else None
        epochs = s["grok_epoch"] - s["fit_epoch"] if steps is not None and s.get("fit_epoch") is not None else None
        return steps, epochs

    def final_acc(self, role: str) -> float | None:
        probe = self.stats["roles"].get(role)
        return self.stats["final"].get(probe)


def task_roles(task: str, rows: list[dict]) -> dict[str, str]:
    """The task's train / test_id / test_ood probe names (as summary.json would give them), for unfinished runs."""
    from groklab.tasks import TASKS

    if task not in TASKS:
        raise UserError(f"unknown data.task={task!r} in a run's config.json")
    roles = importlib.import_module(TASKS[task].generate.__module__).ROLES
    present = {k.removesuffix("/acc") for r in rows for k in r}  # empty probes are never logged
    return {role: probe for role, probe in roles.items() if probe in present or not rows}


def live_stats(config: dict, rows: list[dict]) -> dict:
    """summary.json's fields from the metrics logged so far."""
    roles = task_roles(config["data.task"], rows)
    last = rows[-1] if rows else {}
    return summarize(rows, roles, config["train.fit_threshold"], config["train.grok_threshold"]) | {
        "final_step": last.get("step", 0),
        "elapsed_s": last.get("elapsed_s", 0.0),
    }


def load_run(run_dir: Path, name: str | None = None) -> RunResult:
    cfg = flatten(runs.read_json(run_dir / "config.json"))
    rows = runs.read_metrics(run_dir)
    finished = (run_dir / "summary.json").is_file()
    stats = runs.read_json(run_dir / "summary.json") if finished else live_stats(cfg, rows)
    return RunResult(name or run_dir.name, run_dir, cfg, rows, stats, finished)


def collect(paths: list[Path]) -> tuple[list[RunResult], list[str], list[dict], list[str]]:
    """Runs, swept keys, sweep manifests and names of sweep runs not started yet, from run or sweep folders.
    Swept keys come from sweep.json; for loose runs they are the config keys whose values differ."""
    results, keys, sweeps, missing = [], [], [], []
    for path in paths:
        if (path / "sweep.json").is_file():
            manifest = runs.read_json(path / "sweep.json")
            sweeps.append(manifest)
            keys += [k for k in manifest["keys"] if k not in keys]
            for run in manifest["runs"]:
                run_dir = path / run["dir"]
                if (run_dir / "config.json").is_file():
                    results.append(load_run(run_dir, run["name"]))
                else:
                    missing.append(run["name"])
        elif (path / "config.json").is_file():
            results.append(load_run(path))
        else:
            raise UserError(f"{path} is neither a run directory (config.json) nor a sweep directory (sweep.json)")
    if not sweeps and len(results) > 1:
        every = sorted({k for r in results for k in r.config} - IGNORED_WHEN_COMPARING)
        keys = [k for k in every if len({json.dumps(r.config.get(k)) for r in results}) > 1]
    return unique_names(results), keys, sweeps, missing


def unique_names(results: list[RunResult]) -> list[RunResult]:
    seen: dict[str, int] = {}
    out = []
    for r in results:
        seen[r.name] = seen.get(r.name, 0) + 1
        name = r.name if seen[r.name] == 1 else f"{r.name} ({seen[r.name]})"
        out.append(RunResult(name, r.run_dir, r.config, r.rows, r.stats, r.finished))
    return out


# --- the summary table --------------------------------------------------------------------------------------
def show(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else format_value(value)


def table(results: list[RunResult], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: run, swept values, state, fit/grok steps, fit→grok delay, final accuracies, time."""
    short = short_names(keys)
    header = ["run", *(short[k] for k in keys), "state", "fit step", "grok step", "delay (steps)",
              "delay (epochs)", "train acc", "test_id acc", "test_ood acc", "steps", "time (s)"]
    rows = []
    for r in results:
        steps, epochs = r.delay()
        s = r.stats
        rows.append([
            r.name, *(show(r.config.get(k)) for k in keys), r.state, show(s.get("fit_step")), show(s.get("grok_step")),
            show(steps), show(epochs, 1), *(show(r.final_acc(role), 3) for role in ("train", "test_id", "test_ood")),
            show(s.get("final_step")), show(None if s.get("elapsed_s") is None else round(s["elapsed_s"])),
        ])
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table, columns padded to their widest cell (for the terminal)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# --- figures ----------------------------------------------------------------------------------------------------
METRICS: list[tuple[str, Callable[[RunResult], Any]]] = [
    ("grok step", lambda r: r.stats.get("grok_step")),
    ("fit → grok delay (steps)", lambda r: r.delay()[0]),
    ("grok epoch", lambda r: r.stats.get("grok_epoch")),
    ("fit → grok delay (epochs)", lambda r: r.delay()[1]),
]


def is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def grok_figure(results: list[RunResult], key: str, keys: list[str], out: Path) -> Path:
    """Grok step and fit→grok delay (steps, epochs) against `key`: one line per combination of the other swept
    keys (seeds excepted), the mean over seeds where every seed grokked, each run as a dot, and a run that never
    grokked as a triangle at the top (open while it is still unfinished) — never silently dropped."""
    from groklab.plots import plt

    others = [k for k in keys if k != key and not k.endswith(".seed")]
    values = [r.config.get(key) for r in results]
    numeric = is_numeric(values)
    order = sorted(set(values)) if numeric else list(dict.fromkeys(json.dumps(v) for v in values))
    x_of = (lambda v: v) if numeric else (lambda v: order.index(json.dumps(v)))
    replicated = any(k.endswith(".seed") for k in keys)
    series: dict[str, list[RunResult]] = {}
    for r in results:
        label = ", ".join(f"{short_names(keys)[k]}={format_value(r.config.get(k))}" for k in others)
        series.setdefault(label, []).append(r)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=110, sharex=True)
    for ax, (title, metric) in zip(axes.flat, METRICS, strict=True):
        for i, (label, group) in enumerate(series.items()):
            draw_series(ax, group, key, x_of, metric, f"C{i}", label or ("mean over seeds" if replicated else "runs"))
        finish_axis(ax, title, key, numeric, [json.loads(v) for v in order] if not numeric else order)
    handles = axes[0][0].get_legend_handles_labels()[0] + legend_proxies(results)
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(f"grokking against {key}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return save(fig, out)


def accuracy_metrics(results: list[RunResult]) -> list[tuple[str, Callable[[RunResult], Any]]]:
    """Final train / test_id / test_ood accuracy, the best the grok probe reached during training (structural
    grokking is noisy late), and the linear-rule rate where a sequence task logs one."""

    def final(role: str) -> Callable[[RunResult], Any]:
        return lambda r: r.final_acc(role)

    def logged(r: RunResult, suffix: str) -> list[float]:
        probe = r.stats["roles"].get("grok", r.stats["roles"].get("test_id"))
        return [row[f"{probe}/{suffix}"] for row in r.rows if f"{probe}/{suffix}" in row]

    metrics = [(f"final {role} acc", final(role)) for role in ("train", "test_id", "test_ood")
               if any(r.stats["roles"].get(role) for r in results)]
    metrics.append(("best grok-probe acc", lambda r: max(logged(r, "acc"), default=None)))
    if any(logged(r, "linear") for r in results):
        metrics.append(("final linear-rule rate", lambda r: (logged(r, "linear") or [None])[-1]))
    return metrics


def accuracy_figure(results: list[RunResult], key: str, keys: list[str], out: Path) -> Path:
    """Accuracies against `key` (mean over seeds, every run a dot): for runs that never grok the grok-step
    figure is empty, and this one still says how far each got."""
    from groklab.plots import plt

    values = [r.config.get(key) for r in results]
    numeric = is_numeric(values)
    order = sorted(set(values)) if numeric else list(dict.fromkeys(json.dumps(v) for v in values))
    x_of = (lambda v: v) if numeric else (lambda v: order.index(json.dumps(v)))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, metric) in enumerate(accuracy_metrics(results)):
        by_x: dict[Any, list[float]] = {}
        for r in results:
            y = metric(r)
            if y is not None:
                by_x.setdefault(x_of(r.config.get(key)), []).append(y)
        xs = sorted(by_x)
        for x in xs:
            ax.scatter([x] * len(by_x[x]), by_x[x], color=f"C{i}", s=12, alpha=0.5)
        ax.plot(xs, [sum(by_x[x]) / len(by_x[x]) for x in xs], color=f"C{i}", marker="o", label=label,
                linestyle=":" if "linear" in label else "-")
    finish_axis(ax, f"accuracy against {key}", key, numeric, [json.loads(v) for v in order] if not numeric else order)
    ax.set(yscale="linear", ylim=(-0.02, 1.02), ylabel="accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out)


def tree_projections(result: RunResult) -> list[dict]:
    """The run's tree-projection checkpoints (`groklab analyze --method tree-projection`), or []."""
    found = sorted((result.run_dir / "analysis").glob("tree-projection-*.json"))
    return runs.read_json(found[0])["checkpoints"] if found else []


def tree_figure(results: list[RunResult], key: str, out: Path) -> Path | None:
    """Tree-structuredness (Murty et al. 2023): t_score against step for every run, and the last checkpoint's
    t_score and parse F1 against `key`. None when no run has been analysed."""
    from groklab.plots import plt

    analysed = [(r, tree_projections(r)) for r in results]
    analysed = [(r, c) for r, c in analysed if c]
    if not analysed:
        return None
    fig, (by_step, by_key) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=110)
    for i, (r, checkpoints) in enumerate(analysed):
        points = [c for c in checkpoints if c["step"] > 0]
        by_step.plot([c["step"] for c in points], [c["t_score"] for c in points], color=f"C{i % 10}", marker=".",
                     label=r.name)
    by_step.set(xscale="log", xlabel="step (log)", ylabel="t_score", title="tree-structuredness during training")
    by_step.legend(fontsize=7)
    values = [r.config.get(key) for r, _ in analysed]
    x_of = (lambda v: v) if is_numeric(values) else (lambda v: sorted(map(json.dumps, values)).index(json.dumps(v)))
    for metric, color in (("t_score", "C0"), ("parse_f1", "C1")):
        xs = [x_of(r.config.get(key)) for r, _ in analysed]
        ys = [c[-1][metric] for _, c in analysed]
        by_key.scatter(xs, ys, color=color, label=f"{metric} at the last checkpoint")
    by_key.set(xlabel=key, title=f"tree-structuredness against {key}")
    by_key.grid(alpha=0.3)
    by_key.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out)


def draw_series(ax: Any, group: list[RunResult], key: str, x_of: Callable, metric: Callable, color: str,
                label: str) -> None:
    by_x: dict[Any, list[RunResult]] = {}
    for r in group:
        by_x.setdefault(x_of(r.config.get(key)), []).append(r)
    means = []
    for x, runs_at_x in sorted(by_x.items()):
        ys = [metric(r) for r in runs_at_x]
        got = [y for y in ys if y is not None]
        ax.scatter([x] * len(got), got, color=color, s=14, alpha=0.5, zorder=3)
        if got and len(got) == len(ys):
            means.append((x, sum(got) / len(got)))
        for r, y in zip(runs_at_x, ys, strict=True):
            if y is None and r.stats.get("grok_step") is None:  # never grokked (or not yet): mark at the top
                face = color if r.finished else "none"
                ax.plot([x], [0.95], marker="^", markersize=9, color=color, markerfacecolor=face,
                        transform=ax.get_xaxis_transform(), clip_on=False, zorder=4, linestyle="none")
    if means:
        ax.plot(*zip(*means, strict=True), color=color, marker="o", label=label)


def legend_proxies(results: list[RunResult]) -> list[Any]:
    from matplotlib.lines import Line2D

    style = {"color": "grey", "linestyle": "none"}
    proxies = [Line2D([], [], marker="o", markersize=4, alpha=0.5, label="one run", **style)]
    if any(r.state == "never grokked" for r in results):
        proxies.append(Line2D([], [], marker="^", markersize=8, label="never grokked (drawn at the top)", **style))
    if any(r.state == "unfinished" for r in results):
        proxies.append(Line2D([], [], marker="^", markersize=8, markerfacecolor="none",
                              label="unfinished, not grokked yet", **style))
    return proxies


def finish_axis(ax: Any, title: str, key: str, numeric: bool, order: list[Any]) -> None:
    ys = [y for line in ax.get_lines() if line.get_transform() == ax.transData for y in line.get_ydata()]
    ys += [p[1] for c in ax.collections for p in c.get_offsets()]
    if "delay" not in title and ys and min(ys) > 0:
        ax.set_yscale("log")
    if "delay" in title:
        ax.axhline(0, color="grey", linewidth=0.8)
    if numeric and order and min(order) > 0 and max(order) / min(order) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(order)), [format_value(v) for v in order])
    ax.set_ymargin(0.2)
    ax.set(title=title, xlabel=key)
    ax.grid(alpha=0.3)


def save(fig: Any, out: Path) -> Path:
    """Atomic PNG write: temp file in the same folder, then rename."""
    from groklab.plots import save_figure

    return save_figure(fig, out, dpi=fig.dpi)


# --- the page -----------------------------------------------------------------------------------------------------
def file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in name)


def write(paths: list[Path], out: Path | None = None) -> Path:
    """Figures and index.html for these run / sweep directories; returns the HTML's path."""
    from groklab import plots

    if out is None:
        if len(paths) != 1:
            raise UserError("give --out DIR when reporting several directories")
        out = paths[0] / "report"
    results, keys, sweeps, missing = collect(paths)
    if not results:
        raise UserError(f"no run in {', '.join(map(str, paths))} has started yet; nothing to report")
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    for key in [k for k in keys if not k.endswith(".seed")] or keys:
        png = out / f"grok-vs-{file_name(key)}.png"
        figures.append((f"grokking against {key}", grok_figure(results, key, keys, png)))
        png = out / f"accuracy-vs-{file_name(key)}.png"
        figures.append((f"accuracy against {key}", accuracy_figure(results, key, keys, png)))
        tree_png = tree_figure(results, key, out / f"tree-projection-vs-{file_name(key)}.png")
        if tree_png:
            figures.append((f"tree-structuredness against {key} and step", tree_png))
    curves = []
    for r in results:
        png = out / f"accuracy-{file_name(r.name)}.png"
        plots.accuracy_curves(r.rows, r.stats["roles"], png, title=r.name, summary=r.stats)
        curves.append((r.name, png))
    page = render(paths, results, keys, sweeps, missing, figures, curves)
    index = out / "index.html"
    tmp = index.with_name(f".{index.name}.tmp-{os.getpid()}")
    tmp.write_text(page)
    os.replace(tmp, index)
    return index


def img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" title="{html.escape(png.name)}">'


def render(paths: list[Path], results: list[RunResult], keys: list[str], sweeps: list[dict], missing: list[str],
           figures: list[tuple[str, Path]], curves: list[tuple[str, Path]]) -> str:
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
    cells = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    parts.append(f"<h2>Summary</h2><table><tr>{cells}</tr>{body}</table><p class=meta>fit: train probe ≥ "
                 "train.fit_threshold; grok: test_id probe ≥ train.grok_threshold; delay = grok − fit.</p>")
    if figures:
        parts.append("<h2>Grokking against the swept variables</h2>")
        parts += [f"<figure>{img(png, title)}<figcaption>{e(title)}</figcaption></figure>" for title, png in figures]
    parts.append("<h2>Accuracy curves</h2><div class=grid>")
    parts += [f"<figure>{img(png, name)}<figcaption>{e(name)}</figcaption></figure>" for name, png in curves]
    parts.append("</div>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:"
             "left}th{background:#f3f3f3}img{max-width:100%}.grid{display:grid;grid-template-columns:repeat(auto-fill,"
             "minmax(520px,1fr));gap:1em}figure{margin:0}figcaption{font-size:13px;color:#444}.meta{color:#666}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>groklab report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")
