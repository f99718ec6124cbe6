"""Curricula: stages trained one after another, each starting from the previous stage's checkpoint.

    groklab curriculum ladder                                  # logic → modular arithmetic → two-hop composition
    groklab curriculum atomic-then-inferred --set train.seed=1 --out runs/ati-seed1
    groklab curriculum ladder --start-from scratch            # the control: same stages, data and probes, random init

A curriculum file (shipped ones: groklab/curricula/*.toml):

    description = "..."
    [set]                        # overrides for every stage (warm starts need one architecture throughout)
    "model.n_layers" = 4
    [[stage]]
    name = "logic"               # its run folder: CURRICULUM_DIR/logic
    config = "logic"             # preset name or TOML file (a relative path is looked up beside this file)
    steps = 3000                 # train.steps (optional, like the two below)
    stop_on_grok = true          # train.stop_on_grok
    start_from = "last"          # the previous stage's "last" or "grok" checkpoint, or "scratch" (random init)
    with_state = false           # carry the optimiser and filter state too (warm_start.py)
    [stage.set]                  # this stage's own overrides
    "data.phi" = 0

Forgetting is measured by evaluating every earlier stage's probes in each later stage, logged as
`<stage>--<probe>/acc` (the name is also a file name in the stage's dataset folder: a separator every OS allows
in file names; stage names may not hold `--`). A later stage's vocabulary is the union: its task's tokens (same
ids as on their own), then the earlier stages' tokens it lacks, so earlier probes can be spelled in it and the
warm start carries every earlier token's rows by name. That data (the stage's task plus the carried probes, each
sampled to `carried_probe_size` rows) is written to CURRICULUM_DIR/data/<stage> and the stage trains on that
folder, so its resume reads the very same data. Its model's context is the longest input of any stage, so a
later stage with shorter inputs pays for the earlier stages' longer ones in every step.

Resume: a re-run skips finished stages and resumes a started one exactly (its own checkpoints); curriculum.json
holds the plan, and a re-run whose plan differs (other settings, --set or --start-from) is refused. The report
(CURRICULUM_DIR/report/) is groklab/curriculum_report.py's.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from groklab import config, curriculum_report, runs
from groklab.errors import UserError
from groklab.runs import CARRIED, PLAN, REPORT_DIR, carried_name
from groklab.tasks.dataset import Split, Vocab
from groklab.tasks.io import write_dataset
from groklab.tasks.knowledge import sample_probe

CURRICULUM_DIR = Path(__file__).parent / "curricula"
DATA_DIR = "data"  # CURRICULUM_DIR/data/<stage>: a later stage's data with the earlier stages' probes
TOP_KEYS = ("description", "set", "stage", "carried_probe_size")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
StartFrom = Literal["last", "grok", "scratch"]


@dataclass(frozen=True)
class StageSpec:
    """One `[[stage]]` table as written."""

    name: str
    config: str
    steps: int = 0  # 0: the config's train.steps
    stop_on_grok: bool | None = None  # None: the config's
    start_from: StartFrom = "last"
    with_state: bool = False
    set: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    config: config.RunConfig
    start_from: StartFrom
    with_state: bool


@dataclass(frozen=True)
class Curriculum:
    name: str
    path: Path
    description: str
    stages: list[Stage]
    carried_probe_size: int = 1000  # rows per earlier probe evaluated in later stages (0 = all)

    def plan(self) -> dict:
        """What a re-run must agree with (JSON types: tuples become lists)."""
        stages = [{"name": s.name, "config": s.config.to_dict(), "start_from": s.start_from,
                   "with_state": s.with_state} for s in self.stages]
        plan = {"name": self.name, "stages": stages, "carried_probe_size": self.carried_probe_size}
        return json.loads(json.dumps(plan))


# --- the file -----------------------------------------------------------------------------------------------------
def resolve(name_or_path: str) -> Path:
    """A curriculum file, or the name of a shipped one (`ladder` → groklab/curricula/ladder.toml)."""
    return config.find_toml(name_or_path, CURRICULUM_DIR, "curriculum")


def load(name_or_path: str, overrides: list[str] | None = None, start_from: str | None = None) -> Curriculum:
    """Read, expand and validate a curriculum: every stage's config is built before anything trains.
    `overrides` (--set) apply to every stage, after the file's; `start_from` replaces every stage's."""
    path = resolve(name_or_path)
    raw = config.read_toml(path)
    with config.within(f"{path}: "):
        config.refuse_unknown(raw, TOP_KEYS, "at a curriculum file's top level")
        common = config.flatten(table(raw.get("set", {}), "[set]"))
        stages = raw.get("stage")
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            raise UserError('needs at least one [[stage]] table with name and config, e.g. name = "a", config = "demo"')
        cli = config.apply_overrides({}, overrides or [])
        built = [build_stage(s, i, path, common, config.flatten(cli), start_from) for i, s in enumerate(stages)]
        size = raw.get("carried_probe_size", Curriculum.carried_probe_size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UserError(f"carried_probe_size={config.format_value(size)} must be an integer >= 0 (0 = all rows)")
    check_names(built, path)
    check_chain(built, path)
    return Curriculum(path.stem, path, str(raw.get("description", "")), built, size)


def table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a table of dotted settings, e.g. \"train.threads\" = 1")
    return value


def build_stage(raw: dict, i: int, path: Path, common: dict, cli: dict, start_from: str | None) -> Stage:
    label = f"stage {raw.get('name', i + 1)}: "
    with config.within(label):
        if not isinstance(raw.get("name"), str) or not isinstance(raw.get("config"), str):
            raise UserError('needs name = "..." and config = "PRESET" or "FILE.toml"')
        spec = config.build(StageSpec, raw, "stage")
        if not NAME.fullmatch(spec.name) or CARRIED in spec.name or spec.name in (DATA_DIR, REPORT_DIR):
            raise UserError(f"name={spec.name!r} must be letters, digits, . _ - (a folder name), without "
                            f"{CARRIED} (it separates stage and probe in carried probes' names), not data or report")
        base = config.resolve_beside(spec.config, path.parent)
        own = config.flatten(table(spec.set, "[stage.set]"))
        fixed = {"train.steps": spec.steps} if spec.steps else {}
        fixed |= {"train.stop_on_grok": spec.stop_on_grok} if spec.stop_on_grok is not None else {}
        cfg = config.from_dict(config.set_dotted(config.read_config(base), common | own | fixed | cli))
        chosen = start_from or spec.start_from
        config.check_choice("start_from", chosen, ("last", "grok", "scratch"))
    return Stage(spec.name, cfg, chosen, spec.with_state)


def check_names(stages: list[Stage], path: Path) -> None:
    seen = set()
    for s in stages:
        if s.name in seen:
            raise UserError(f"{path}: two stages are named {s.name!r}; stage names are folder names, make them unique")
        seen.add(s.name)


def check_chain(stages: list[Stage], path: Path) -> None:
    """Warm starts need one architecture (and, carrying state, one optimiser): refuse a mismatch before anything
    trains, not when a later stage starts hours in."""
    from groklab.warm_start import architecture_differences  # torch: checking a curriculum file needs none

    for prev, stage in zip(stages, stages[1:], strict=False):
        if stage.start_from == "scratch":
            continue
        differ = architecture_differences(prev.config.model, stage.config.model)
        if differ:
            key, a, b = differ[0]
            raise UserError(
                f"{path}: stage {stage.name} starts from stage {prev.name}, but model.{key} is "
                f"{config.format_value(a)} there and {config.format_value(b)} here; set it once in [set]"
            )
        a, b = prev.config.train.optimizer, stage.config.train.optimizer
        if stage.with_state and a != b:
            raise UserError(
                f"{path}: stage {stage.name} carries stage {prev.name}'s optimiser state (with_state = true), but "
                f"train.optimizer is {a} there and {b} here; use one optimizer or with_state = false"
            )


# --- carried probes (named by groklab.runs: carried_name) ----------------------------------------------------------
def remap(split, ids: np.ndarray):
    """A split's token ids (inputs, answers, fields; ABSENT stays ABSENT) translated by `ids` (old id -> new id)."""
    if split.is_sequence:
        raise UserError("curricula carry answer tasks' probes only; a sequence task cannot be a stage before another")
    translate = lambda a: np.where(a >= 0, ids[np.clip(a, 0, None)], a)  # noqa: E731
    return Split(translate(split.tokens), split.lengths, translate(split.answers),
                 {k: translate(v) for k, v in split.fields.items()}, split.kinds)


def same_rows(a, b) -> bool:
    """Whether two answer splits hold the same inputs and answers (e.g. the same task and data seed twice)."""
    width = min(a.tokens.shape[1], b.tokens.shape[1])
    return (len(a) == len(b) and np.array_equal(a.answers, b.answers) and np.array_equal(a.lengths, b.lengths)
            and np.array_equal(a.tokens[:, :width], b.tokens[:, :width]))


def with_earlier_probes(data, earlier, earlier_stage: str, size: int):
    """`data` whose vocabulary also holds `earlier`'s tokens (appended) and whose probes also hold `earlier`'s,
    named `carried_name(earlier_stage, probe)`, at most `size` rows each."""
    own = set(data.vocab.tokens)
    vocab = Vocab(data.vocab.tokens + tuple(t for t in earlier.vocab.tokens if t not in own))
    index = vocab.index()
    ids = np.array([index[t] for t in earlier.vocab.tokens], dtype=np.int64)
    rng = np.random.default_rng(0)  # which rows are carried: fixed, so every seed of a curriculum sees the same
    probes = dict(data.probes)
    for name, split in earlier.probes.items():
        rows = remap(split, ids)
        if not any(same_rows(rows, own) for own in data.probes.values()):  # one evaluation of the same facts
            probes[carried_name(earlier_stage, name)] = sample_probe(rng, rows, size)
    return dataclasses.replace(data, vocab=vocab, probes=probes)


# --- running ----------------------------------------------------------------------------------------------------------
def check_plan(cur: Curriculum, out: Path) -> None:
    """Write the plan on the first run; a re-run must bring the same one."""
    path = out / PLAN
    plan = cur.plan()
    if not path.is_file():
        if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):
            raise UserError(f"{out} already exists and holds no {PLAN}; pick another --out")
        out.mkdir(parents=True, exist_ok=True)
        runs.write_json(path, plan)
        return
    old = runs.read_json(path)
    if old != plan:
        names = [s["name"] for s in plan["stages"]]
        differ = [s["name"] for s, t in zip(plan["stages"], old.get("stages", []), strict=False) if s != t]
        what = f"stage {differ[0]}" if differ else f"the stages ({', '.join(names)})"
        raise UserError(
            f"{out} holds curriculum {old.get('name')!r} started with other settings ({what} differs); "
            "run it with the same file, --set and --start-from, or pick another --out"
        )


def stage_data_dir(cur: Curriculum, out: Path, i: int) -> str | None:
    """Stage i's dataset folder (written once), or None for the first stage (its task's own data)."""
    if i == 0:
        return None
    stage, prev = cur.stages[i], cur.stages[i - 1]
    _, earlier = runs.open_run(out / prev.name)
    data = with_earlier_probes(runs.load_task_data(stage.config, None), earlier, prev.name, cur.carried_probe_size)
    folder = out / DATA_DIR / stage.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(data, stage.config.to_dict()["data"], folder)
    return str(folder)


def run_stage(cur: Curriculum, out: Path, i: int, progress: bool) -> dict:
    """Train stage i to its end (skipped when finished, resumed when started); returns its summary."""
    # torch only once a stage trains: loading and checking a curriculum file (and its error line) need none
    from groklab import train
    from groklab.figures.accuracy import run_accuracy_figure
    from groklab.warm_start import WarmStart

    stage = cur.stages[i]
    run_dir = out / stage.name
    if runs.is_run(run_dir) and runs.is_finished(run_dir):
        return runs.read_summary(run_dir)
    if runs.is_run(run_dir) and runs.list_steps(run_dir):
        trainer = train.resume(run_dir, progress)
    else:
        if run_dir.exists():  # created but killed before its first checkpoint: nothing trained is lost
            shutil.rmtree(run_dir)
        warm = None
        if i and stage.start_from != "scratch":
            warm = WarmStart(out / cur.stages[i - 1].name, stage.start_from, stage.with_state)
        with config.within(f"stage {stage.name}: "):
            trainer = train.start(stage.config, run_dir, stage_data_dir(cur, out, i), progress, init_from=warm)
    summary = trainer.run()
    run_accuracy_figure(run_dir, summary, title=f"{cur.name}: {stage.name}")
    return summary


def run(cur: Curriculum, out: Path, progress: bool = True) -> list[dict]:
    """Every stage in order (resuming where a killed run stopped), then the report; returns the summaries."""
    check_plan(cur, out)
    summaries = []
    for i, stage in enumerate(cur.stages):
        if progress:
            print(f"stage {i + 1}/{len(cur.stages)}: {stage.name} ({stage.config.data.task}) → {out / stage.name}")
        summaries.append(run_stage(cur, out, i, progress))
    curriculum_report.write(out)
    return summaries
