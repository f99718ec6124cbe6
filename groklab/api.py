"""groklab's Python API: what the tutorials, your own scripts and the CLI call.

    import groklab.api as gl

    data = gl.make_dataset("composition", n_entities=100, phi=12.6)   # a task's facts, in memory
    gl.facts_table(data, "test_inferred_ood", n=5)                     # a few of them, as a table
    run = gl.train("demo", {"train.threads": 1}, out="runs/demo")     # train a preset; the run comes back
    run.summary["grok_step"], run.metrics[-1]["test_inferred_id/acc"]  # what its files say
    lens = gl.analyze(run, "logit-lens")                              # over every checkpoint → run/analysis/
    gl.plot_accuracy(run)                                             # run/accuracy.png (shown in Jupyter)

Each function is a thin layer over the module that owns the job (tasks, train, runs, checkpoint, analysis,
figures), so a run made here is the directory the CLI makes, and either reads the other's. Problems a user can
fix raise `groklab.errors.UserError` naming the fix. `train` lives here only, not on the `groklab` package:
there `groklab.train` is the trainer's module.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from groklab import config, runs, tasks
from groklab.analysis import methods
from groklab.errors import UserError
from groklab.tasks import io as dataset_io
from groklab.tasks.dataset import ABSENT, Split, TaskData

if TYPE_CHECKING:
    from groklab.model import Transformer
    from groklab.warm_start import WarmStart

Overrides = Mapping[str, Any] | Sequence[str] | None  # {"model.n_layers": 2} or ["model.n_layers=2"]


# --- configs and data ------------------------------------------------------------------------------------------
def load_config(preset: str | Path | config.RunConfig, overrides: Overrides = None) -> config.RunConfig:
    """A validated run config from a preset name (`demo`), a TOML file, a run folder (its config.json) or a config,
    with dotted overrides:
    `{"data.phi": 9, "train.threads": 1}` (Python values) or `["data.phi=9"]` (as `--set` takes them)."""
    if isinstance(preset, config.RunConfig):
        raw = preset.to_dict()
    else:
        raw = config.read_config(config.resolve_preset(str(preset)))
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        raw = config.set_dotted(raw, dict(overrides))
    elif overrides:
        raw = config.apply_overrides(raw, list(overrides))
    return config.from_dict(raw)


def data_config(task: str | config.RunConfig, settings: Mapping[str, Any]) -> config.RunConfig:
    """A run config whose [data] section is `task`'s defaults (or a config's own data), with `settings` set."""
    raw = {"data": task.to_dict()["data"] if isinstance(task, config.RunConfig) else {"task": task}}
    values = {f"data.{key.removeprefix('data.')}": value for key, value in settings.items()}
    return config.from_dict(config.set_dotted(raw, values))


def make_dataset(task: str | config.RunConfig, **settings: Any) -> TaskData:
    """A task's data, generated in memory: a task name and its settings (`make_dataset("composition",
    n_entities=100, phi=9)`), or a run config's own data (`make_dataset(load_config("demo"))`). Same settings,
    same facts: generation is a pure function of them (the data seed included)."""
    return tasks.generate(data_config(task, settings).data)


def write_dataset(task: str | config.RunConfig, out: str | Path, fmt: str = "groklab", **settings: Any) -> TaskData:
    """Generate a task's data and write it as a dataset folder (`fmt`: groklab or paper), as `groklab data`
    does; returns the data."""
    cfg = data_config(task, settings)
    data = tasks.generate(cfg.data)
    dataset_io.write_dataset(data, cfg.to_dict()["data"], Path(out), fmt=fmt)
    return data


def load_dataset(path: str | Path) -> TaskData:
    """A dataset folder in groklab's format or the paper's (`groklab data ... --out PATH` writes one)."""
    return dataset_io.load_dataset(Path(path))


# --- looking at facts -----------------------------------------------------------------------------------------
class Table(list):
    """Rows (dicts) that print as an aligned text table and show as an HTML table in Jupyter."""

    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for row in self for k in row))

    def __repr__(self) -> str:
        cols = self.columns()
        cells = [cols] + [[_cell(row.get(c)) for c in cols] for row in self]
        widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)

    def _repr_html_(self) -> str:
        cols = self.columns()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in cols) + "</tr>" for row in self
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def get_split(data: TaskData, split: str) -> Split:
    """The training set (`"train"`) or a probe by name."""
    if split == "train":
        return data.train
    if split not in data.probes:
        raise UserError(f"split {split!r} is not in this {data.task} data; choose train, {', '.join(data.probes)}")
    return data.probes[split]


def facts_table(data: TaskData, split: str = "train", n: int = 5, kind: str | None = None, seed: int = 0) -> Table:
    """`n` facts of a split (a fixed random sample, in the split's order) as tokens: the input, every field of
    the fact's structure (head, r1, bridge, r2, answer ...; blank where a fact has none) and its kind.
    `kind`: only rows of that kind (the training set mixes "atomic" and "inferred" facts)."""
    rows = get_split(data, split)
    idx = np.arange(len(rows))
    if kind is not None:
        if rows.kinds is None or kind not in set(rows.kinds):
            found = sorted(set(rows.kinds)) if rows.kinds is not None else []
            raise UserError(f"split {split!r} has no facts of kind {kind!r}; its kinds: {', '.join(found) or 'none'}")
        idx = idx[rows.kinds == kind]
    idx = np.sort(np.random.default_rng(seed).permutation(idx)[: max(n, 0)])
    tok = data.vocab.tokens
    table = Table()
    for i in idx:
        row: dict[str, Any] = {"input": " ".join(tok[t] for t in rows.tokens[i, : rows.lengths[i]])}
        row |= {name: tok[col[i]] if col[i] != ABSENT else None for name, col in rows.fields.items()}
        row.setdefault("answer", tok[rows.answers[i]])
        if rows.kinds is not None:
            row["kind"] = str(rows.kinds[i])
        table.append(row)
    return table


def describe(data: TaskData) -> Table:
    """Every split's size and role (what a run uses it for): the shape of a task's data at a glance."""
    role_of = {probe: role for role, probe in reversed(list(data.roles.items()))}
    table = Table([{"split": "train", "facts": len(data.train), "role": "training set (what the model sees)"}])
    table += [{"split": name, "facts": len(s), "role": role_of.get(name, "")} for name, s in data.probes.items()]
    return table


# --- runs -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureFile:
    """A PNG on disk that Jupyter shows inline; `path` is where it is."""

    path: Path

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class Run:
    """A run directory, read back by `groklab.runs` (`record`) at each access, so it also shows a run that is
    training; adds what needs torch (its model) and the data it trained on."""

    path: Path

    @property
    def record(self) -> runs.RunRecord:
        """The run's files as they are now: config.json, summary.json, metrics, analysis JSON (`runs.RunRecord`)."""
        return runs.load_run(self.path)

    @property
    def config(self) -> config.RunConfig:
        return runs.read_config(self.path)

    @property
    def metrics(self) -> list[dict]:
        """The rows of metrics.jsonl: one per evaluation, e.g. {"step": 512, "test_inferred_id/acc": 0.4, ...}."""
        return self.record.metrics

    @property
    def summary(self) -> dict | None:
        """summary.json (fit_step, grok_step, final accuracies, ...), or None before the run first ends."""
        return self.record.summary

    @property
    def finished(self) -> bool:
        return self.record.finished

    def checkpoints(self) -> list[int]:
        """Steps of the run's checkpoints, oldest first."""
        return runs.list_steps(self.path)

    def curve(self, probe: str, metric: str = "acc") -> tuple[list[int], list[float]]:
        """Steps and values of `<probe>/<metric>` (`train/loss` for the training loss: probe "train", metric
        "loss"), over the evaluations that logged it."""
        key = f"{probe}/{metric}"
        rows = [r for r in self.metrics if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]

    @cached_property
    def data(self) -> TaskData:
        """The data the run trained on (regenerated from its config, or read from its dataset folder)."""
        return runs.open_run(self.path)[1]

    def model(self, step: int | None = None) -> Transformer:
        """The model with checkpoint `step`'s weights (default: the newest that verifies), in eval mode."""
        from groklab import checkpoint  # torch: the API's import stays light until a model is asked for
        from groklab.model import Transformer

        if step is None:
            step = checkpoint.latest_good(self.path)
            if step is None:
                raise UserError(f"{self.path}: no checkpoint to load; train the run first")
        elif step not in self.checkpoints():
            raise UserError(f"{self.path}: no checkpoint at step {step}; there are {self.checkpoints()}")
        model = Transformer(self.config.model, len(self.data.vocab), self.data.n_ctx)
        checkpoint.load(self.path, step, model)
        return model.eval()

    def __repr__(self) -> str:
        s = self.summary
        state = f"step {s['final_step']:,}, grok step {s['grok_step']}" if s else "not finished"
        return f"Run({str(self.path)!r}: {state})"


def default_run_dir(name: str | Path) -> Path:
    """runs/<name>-<time>, as `groklab train` names a run when no --out is given (a run's config.json: its folder's)."""
    path = Path(name)
    path = path.parent if path.name == config.RUN_CONFIG else path
    return Path("runs") / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    preset: str | Path | config.RunConfig,
    overrides: Overrides = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    init_from: WarmStart | str | None = None,
) -> Run:
    """Train a new run from a preset name, TOML file or config with overrides (see `load_config`) into `out`
    (new or empty; default runs/<name>-<time>), on generated data or a dataset folder `data`; draws its
    accuracy.png and returns the run. `stop_at`: pause at the first evaluation step at or after it, on the
    schedule of the whole run (learning rate and evaluations stay those of `train.steps`); `resume` continues
    it exactly. `progress`: a progress bar on stderr. `init_from`: start from another run's checkpoint
    ("RUN_DIR[@STEP]" or a `warm_start.WarmStart`; tokens mapped by name, see groklab/warm_start.py)."""
    from groklab import train as trainer  # torch, loaded when a run trains: `import groklab.api` stays light
    from groklab import warm_start

    cfg = load_config(preset, overrides)
    name = cfg.data.task if isinstance(preset, config.RunConfig) else preset
    run_dir = Path(out) if out is not None else default_run_dir(name)
    warm = warm_start.parse(init_from, False) if isinstance(init_from, str) else init_from
    trainer.start(cfg, run_dir, str(data) if data is not None else None, progress=progress, init_from=warm).run(
        stop_at
    )
    plot_accuracy(Run(run_dir))
    return Run(run_dir)


def resume(run_dir: str | Path, stop_at: int | None = None, progress: bool = True) -> Run:
    """Continue a run from its newest good checkpoint to the end of its schedule (or, as in `train`, to
    `stop_at`), exactly as if it had never stopped; draws its accuracy.png and returns it."""
    from groklab import train as trainer  # torch, loaded when a run trains

    trainer.resume(Path(run_dir), progress=progress).run(stop_at)
    plot_accuracy(Run(Path(run_dir)))
    return Run(Path(run_dir))


def load_run(run_dir: str | Path) -> Run:
    """An existing run directory (one `groklab train` or `train` made)."""
    path = Path(run_dir)
    if not runs.is_run(path):
        raise UserError(
            f"{path} is not a run directory (no {runs.CONFIG}); train one (`groklab train` or groklab.api.train)"
        )
    return Run(path)


def _run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


# --- analysis and figures ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    """An analysis method's results over a run's checkpoints: the JSON (`analysis/<method>-<split>.json`) as a
    dict, and its figures."""

    path: Path
    result: dict
    figures: tuple[FigureFile, ...]

    def at(self, step: int) -> dict:
        """The results at the checkpoint nearest `step` (on a log scale: checkpoints are log-spaced)."""
        from groklab.figures.analysis import nearest_checkpoint  # matplotlib: only when an analysis is read

        return nearest_checkpoint(self.result["checkpoints"], step)


def analyze(
    run: Run | str | Path, method: str = "logit-lens", split: str | None = None, examples: int = 300,
    steps: Sequence[int] | None = None, progress: bool = False,
) -> Analysis:
    """Run an analysis method (`groklab.analysis.methods.METHODS`: logit-lens, causal-tracing, tree-projection)
    on `examples` rows of probe `split` (default: the method's) at every checkpoint, or at the checkpoints of
    `steps` (quicker); writes its JSON and figures into the run's analysis/ folder and returns them."""
    from groklab.analysis.over_checkpoints import analyze as over_checkpoints  # torch, loaded when a run is analysed

    if examples < 1:
        raise UserError(f"examples={examples} must be >= 1")
    path = run.path if isinstance(run, Run) else Path(run)  # a folder that is no run: the analysis says what is missing
    out = over_checkpoints(path, method, split, examples, progress, None if steps is None else list(steps))
    result = runs.read_json(out)
    figures = [runs.analysis_file(path, method, result["split"], suffix) for suffix, _ in methods.get(method).figures]
    return Analysis(out, result, tuple(FigureFile(f) for f in figures))


def plot_accuracy(run: Run | str | Path, out: str | Path | None = None) -> FigureFile:
    """Every probe's accuracy against step (log axis), fit and grok steps marked: the run's accuracy.png (or
    `out`). Works on an unfinished run too (fit and grok as detected so far)."""
    from groklab.figures.accuracy import accuracy_curves  # matplotlib: only when a figure is drawn

    record = _run(run).record
    stats = record.stats()
    path = Path(out) if out is not None else record.path / runs.ACCURACY_FIGURE
    return FigureFile(accuracy_curves(record.metrics, stats["roles"], path, record.path.name, stats))
