"""Held-out seeds, checked: a claim's numbers on seeds that never helped choose its setting.

Each `[[claim]]` of docs/claims.toml names its seeds (groklab/claims.py reads the table, this module checks it):

    tuning_seeds   = [0, 1]          # every seed of the claim's runs that is not held out: seen while the setting
                                     # was chosen, tuned, or the claim shaped (exploration, pilots, candidates)
    held_out_seeds = [11, 12, 13]    # run once, after the setting was frozen, never used to choose between
                                     # candidates; [] with `seeds_note` saying why when the records show none
    frozen_config  = "docs/runs/x/seed-0/config.json"   # with held-out seeds: the frozen setting, a TOML file or
                                     # a committed config.json, relative to the repository root
    seed_keys      = ["train.seed"]  # optional: the config keys a seed sets (default train.seed; a new knowledge
                                     # base too: ["train.seed", "data.seed"]); a run's seed is s when all are s
    setting_keys   = ["data.task"]   # optional: the keys that make an exploration run the same setting
    seeds_note     = "..."           # why held_out_seeds is empty, or what else a reader must know

`groklab claims --check` then fails, one line per violation, when
- a claim names no `held_out_seeds` (or names none without a `seeds_note`), or a seed in both lists;
- a run of the claim has a seed in neither list, or seed keys that disagree;
- a held-out run's config.json differs from `frozen_config` in anything but its seed keys (and BOOKKEEPING);
- a held-out seed has no run, or more than one, among the claim's runs (run once, always reported);
- a held-out seed appears in an exploration folder (`docs/runs/exploration-*`): a run there whose seed keys all
  equal it and whose `setting_keys` equal the frozen config's — it was seen before the setting was frozen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config
from groklab.errors import UserError

KEYS = ("tuning_seeds", "held_out_seeds", "frozen_config", "seed_keys", "setting_keys", "seeds_note")
SEED_KEYS = ("train.seed",)  # model init, batch order and dropout: every run has it
SETTING_KEYS = ("data.task",)  # an exploration run of the same task counts as the same setting unless narrowed
EXPLORATION = "exploration-*"  # folders under docs/runs/ that hold exploration: one-off runs that chose settings
# keys that say how a run was computed, not what: a held-out run may differ from the frozen config in them
BOOKKEEPING = frozenset({"train.threads", "train.device", "train.compile", "train.eval_batch_size",
                         "train.tensorboard", "train.wandb"})


@dataclass(frozen=True)
class Seeds:
    """A claim's seed fields; `held_out` is None when the claim names none (a --check violation)."""

    tuning: tuple[int, ...] = ()
    held_out: tuple[int, ...] | None = None
    frozen_config: str | None = None
    seed_keys: tuple[str, ...] = SEED_KEYS
    setting_keys: tuple[str, ...] = SETTING_KEYS
    note: str | None = None


def parse(entry: dict) -> Seeds:
    """A claim's seed fields, their types checked (UserError naming the key and an example)."""
    lists = {}
    for key, example in (("tuning_seeds", "[0, 1, 2]"), ("held_out_seeds", "[3, 4, 5]")):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
            raise UserError(f"{key} must be a list of seeds (ints >= 0), e.g. {key} = {example}")
        lists[key] = tuple(value)
    for key in ("seed_keys", "setting_keys"):
        value = entry.get(key, ["x"])
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise UserError(f'{key} must be a non-empty list of dotted config keys, e.g. {key} = ["train.seed"]')
    for key in ("frozen_config", "seeds_note"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise UserError(f'{key} must be a non-empty string, e.g. {key} = "..."')
    return Seeds(
        tuning=lists["tuning_seeds"],
        held_out=lists["held_out_seeds"] if "held_out_seeds" in entry else None,
        frozen_config=entry.get("frozen_config"),
        seed_keys=tuple(entry.get("seed_keys", SEED_KEYS)),
        setting_keys=tuple(entry.get("setting_keys", SETTING_KEYS)),
        note=entry.get("seeds_note"),
    )


# --- reading configs ---------------------------------------------------------------------------------------
def flat_raw(path: Path) -> dict[str, Any]:
    """A config.json as written, flattened (`train.seed`); benchmark records have top-level keys (`seed`)."""
    return config.flatten(json.loads(path.read_text()))


def flat_resolved(path: Path) -> dict[str, Any]:
    """A run config through the config classes (defaults filled, moved keys renamed), flattened; JSON round trip
    so that tuples (betas) compare as lists."""
    return config.flatten(json.loads(json.dumps(config.load(str(path)).to_dict())))


def seed_of(flat: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The run's seed: the value every one of `keys` holds; None when they disagree or one is missing."""
    values = {flat.get(key) for key in keys}
    return values.pop() if len(values) == 1 and None not in values else None


def exploration_configs(runs_root: Path) -> list[Path]:
    return sorted(p for folder in runs_root.glob(EXPLORATION) for p in folder.rglob(config.RUN_CONFIG))


# --- the checks --------------------------------------------------------------------------------------------
def check(name: str, seeds: Seeds, folders: list[Path], repo: Path, runs_root: Path, pending: bool = False
          ) -> list[str]:
    """Every violation of the held-out protocol by one claim (`name`: how lines name it), one line each (module
    docstring); a pending claim (no runs yet) only has its fields checked."""
    if seeds.held_out is None:
        return [f"{name} names no held_out_seeds; add tuning_seeds = [...] and held_out_seeds = [...] "
                "(or held_out_seeds = [] with seeds_note = \"why\")"]
    problems = []
    if not seeds.held_out and seeds.note is None:
        problems.append(f"{name} has held_out_seeds = [] without a seeds_note; say why none is held out")
    both = sorted(set(seeds.held_out) & set(seeds.tuning))
    if both:
        problems.append(f"{name}: seed {both[0]} is in tuning_seeds and held_out_seeds; a seed is one or "
                        "the other")
    if pending:
        return problems
    named = set(seeds.held_out) | set(seeds.tuning)
    held_out_runs: dict[int, list[Path]] = {seed: [] for seed in seeds.held_out}
    for folder in folders:
        flat = flat_raw(folder / config.RUN_CONFIG)
        seed = seed_of(flat, seeds.seed_keys)
        where = f"{name}: run {folder.relative_to(runs_root)}"
        if seed is None:
            shown = ", ".join(f"{k}={config.format_value(flat.get(k))}" for k in seeds.seed_keys)
            problems.append(f"{where} has no single seed ({shown}); set seed_keys to the keys its seed sets")
        elif seed not in named:
            problems.append(f"{where} has seed {seed}, in neither tuning_seeds nor held_out_seeds; add it to one")
        elif seed in held_out_runs:
            held_out_runs[seed].append(folder)
    if seeds.held_out:
        problems += check_held_out(name, seeds, held_out_runs, repo, runs_root)
    return problems


def check_held_out(name: str, seeds: Seeds, held_out_runs: dict[int, list[Path]], repo: Path, runs_root: Path
                   ) -> list[str]:
    """A held-out run is the frozen setting with another seed, run once; its seed never ran in exploration."""
    where = name
    if seeds.frozen_config is None:
        return [f"{where} has held-out seeds but no frozen_config; name the frozen setting's TOML or config.json"]
    frozen_path = repo / seeds.frozen_config
    if not frozen_path.is_file():
        return [f"{where}: frozen_config {seeds.frozen_config!r} is not a file under {repo}; commit the frozen "
                "setting and give its path from the repository root"]
    frozen = flat_resolved(frozen_path)
    problems = []
    for seed, runs in held_out_runs.items():
        if len(runs) != 1:
            found = ", ".join(str(r.relative_to(runs_root)) for r in runs) or "none"
            problems.append(f"{where}: held-out seed {seed} has {len(runs)} runs among the claim's runs ({found}); "
                            "a held-out seed is run once and always reported")
        for run in runs:
            differs = different_keys(flat_resolved(run / config.RUN_CONFIG), frozen, seeds.seed_keys)
            if differs:
                keys = ", ".join(seeds.seed_keys)
                problems.append(f"{where}: held-out run {run.relative_to(runs_root)} differs from the frozen config "
                                f"{seeds.frozen_config} in {differs}; a held-out run changes only {keys}")
    return problems + check_exploration(name, seeds, frozen, runs_root)


def different_keys(flat: dict[str, Any], frozen: dict[str, Any], seed_keys: tuple[str, ...]) -> str:
    """`train.steps=7000 (frozen 6000), ...` for every key but the seed keys and BOOKKEEPING; '' if none."""
    keys = sorted((set(flat) | set(frozen)) - set(seed_keys) - BOOKKEEPING)
    return ", ".join(f"{k}={config.format_value(flat.get(k))} (frozen {config.format_value(frozen.get(k))})"
                     for k in keys if flat.get(k) != frozen.get(k))


def check_exploration(name: str, seeds: Seeds, frozen: dict[str, Any], runs_root: Path) -> list[str]:
    """A held-out seed must not appear in an exploration run of the same setting (`setting_keys`)."""
    problems = []
    setting = {key: frozen.get(key) for key in seeds.setting_keys}
    for path in exploration_configs(runs_root):
        flat = flat_resolved(path)
        seed = seed_of(flat, seeds.seed_keys)
        if seed in seeds.held_out and all(flat.get(k) == v for k, v in setting.items()):
            same = ", ".join(f"{k}={config.format_value(v)}" for k, v in setting.items())
            problems.append(f"{name}: held-out seed {seed} appears in exploration run "
                            f"{path.parent.relative_to(runs_root)} ({same}); it was seen before the setting was "
                            "frozen: choose held-out seeds no exploration used")
    return problems
