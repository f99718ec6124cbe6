"""The claims table of docs/results.md, rebuilt from committed runs, so every number in it has its run.

    groklab claims            # rewrite the table between the claims markers of docs/results.md
    groklab claims --check    # exit 2 if that table differs from what docs/runs/ gives (for CI)

`docs/claims.toml` holds one `[[claim]]` per row of the table:

    [[claim]]
    claim = "Higher φ groks faster (Wang et al.)"       # the paper's claim
    section = "φ sweep on a 2-core CPU"                 # the heading of results.md that explains it
    runs = ["phi-cpu/*"]                                # globs under docs/runs/: folders with summary.json, config.json
    measure = ["grok_step", "final.test_inferred_ood"]  # dotted paths into each run's summary.json, or into
                                                        # another JSON file of the run folder, named before a colon:
                                                        # "analysis/tree-projection-gen.json:checkpoints.-1.t_score"
                                                        # (an integer part indexes a list; -1 is the last item)
    group_by = "data.phi"                               # optional: one value per group (dotted key of config.json),
                                                        # or "runs": one group per glob (the arms of a comparison)
    baseline = "no_information.test_inferred_ood"       # optional: a summary path shown beside the measure
    verdict = "reproduced"                              # written by a person, never computed
    pending = "why"                                     # optional: the row says "pending: why", no numbers

Each metric is the mean over runs (seeds) ± the half-width of its 95% Student-t interval; with fewer than
MIN_RUNS runs the values themselves, marked "n < 3: no interval". A null value (a fit or grok step the run
never reached) is counted as "k of n never", never averaged.
"""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab import config, held_out
from groklab.errors import UserError
from groklab.runs import CONFIG, SUMMARY, RunRecord, load_run, write_text
from groklab.stats import MIN_RUNS, half_width_95

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
BY_GLOB = "runs"  # group_by = "runs": one group per glob of `runs`, e.g. a curriculum against its scratch control
FEW = f"n < {MIN_RUNS}: no interval"
REQUIRED = ("claim", "section", "runs", "measure", "verdict")
OPTIONAL = ("group_by", "baseline", "pending")
HEADER = (
    "| claim (paper) | our measurement (mean ± 95% CI over seeds) | runs (n, folder under docs/runs/) | verdict |\n"
    "|---|---|---|---|\n"
)


@dataclass(frozen=True)
class Claim:
    claim: str
    section: str
    runs: tuple[str, ...]
    measure: tuple[str, ...]
    verdict: str
    group_by: str | None = None
    baseline: str | None = None
    pending: str | None = None
    seeds: held_out.Seeds = held_out.Seeds()  # tuning_seeds, held_out_seeds, ...: groklab/held_out.py


def source(path: str) -> tuple[str, str]:
    """A measure's file and its dotted path in it: `analysis/x.json:checkpoints.-1.t_score` → (analysis/x.json,
    checkpoints.-1.t_score); a path without a `.json:` prefix reads summary.json."""
    name, sep, inner = path.partition(".json:")
    return (name + ".json", inner) if sep else (SUMMARY, path)


# --- statistics ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    values: tuple[float, ...]  # the runs that have a value
    never: int  # runs whose value is null: a step they never reached

    @property
    def n(self) -> int:
        return len(self.values) + self.never

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def half_width(self) -> float | None:
        """Half the 95% Student-t interval of the mean; None below MIN_RUNS values."""
        return half_width_95(self.values)


def format_stat(name: str, stat: Stat, say_few: bool = True) -> str:
    """`grok_step 3,496 ± 412`, `final.ood_atomic 0.590 / 0.610 (n < 3: no interval)`, `grok_step never (3 of 3)`;
    `say_few=False` leaves out "n < 3: no interval" where the caller says it once for a whole group."""
    if not stat.values:
        return f"{name} never ({stat.never} of {stat.n})"
    integral = all(isinstance(v, int) for v in stat.values)
    decimals = 0 if integral else 3 if max(abs(v) for v in stat.values) < 10 else 1
    show = f"{{:,.{decimals}f}}".format
    half, notes = stat.half_width, []
    if half is None:
        text = f"{name} {' / '.join(show(v) for v in stat.values)}"
        notes += [FEW] if say_few else []
    else:
        text = f"{name} {show(stat.mean)} ± {show(half)}"
    if stat.never:
        notes.append(f"{stat.never} of {stat.n} never")
    return text + (f" ({'; '.join(notes)})" if notes else "")


# --- reading the claims file and the runs ------------------------------------------------------------------
def load_claims(path: Path) -> list[Claim]:
    if not path.is_file():
        raise UserError(f"{path} is missing; it lists the claims table's rows (see groklab/claims.py)")
    raw = config.read_toml(path)
    with config.within(f"{path}: "):
        config.refuse_unknown(raw, ["claim"], "at the top level (one [[claim]] table per row)")
    entries = raw.get("claim")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: no [[claim]] tables; add one per row of the claims table")
    return [parse_claim(entry, f"{path}: [[claim]] {i + 1}: ") for i, entry in enumerate(entries)]


def parse_claim(entry: dict, where: str) -> Claim:
    with config.within(where):
        if not isinstance(entry, dict):
            raise UserError("is not a table; write each row as [[claim]] with keys below it")
        config.refuse_unknown(entry, REQUIRED + OPTIONAL + held_out.KEYS, "in [[claim]]")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise UserError(f"missing key {missing[0]}; every [[claim]] needs {', '.join(REQUIRED)}")
        for key in ("claim", "section", "verdict") + tuple(k for k in OPTIONAL if k in entry):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise UserError(f"{key} must be a non-empty string, e.g. {key} = \"...\"")
        for key in ("runs", "measure"):
            value = entry[key]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise UserError(f'{key} must be a non-empty list of strings, e.g. {key} = ["..."]')
        for pattern in entry["runs"]:
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                raise UserError(f"runs pattern {pattern!r} must be relative to docs/runs/, without '..'")
        for path in entry["measure"] + [entry[k] for k in ("baseline",) if k in entry]:
            name, inner = source(path)
            if Path(name).is_absolute() or ".." in Path(name).parts or not inner:
                raise UserError(
                    f"measure {path!r} must name a JSON file inside the run folder and a path in it, "
                    'e.g. "analysis/tree-projection-gen.json:checkpoints.-1.t_score"'
                )
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k not in held_out.KEYS}
        return Claim(**fields, seeds=held_out.parse(entry))


def glob_folders(root: Path, claim: Claim) -> dict[str, list[Path]]:
    """Each of the claim's globs → the folders it matches under `root`; one matching none is an error unless
    the claim is pending."""
    found = {}
    for pattern in claim.runs:
        found[pattern] = sorted(p for p in root.glob(pattern) if p.is_dir())
        if not found[pattern] and claim.pending is None:
            raise UserError(
                f"runs pattern {pattern!r} matches no folder under {root}; commit the "
                f'runs\' summary.json and config.json there, or set pending = "why" in the claim'
            )
    return found


def run_folders(globs: dict[str, list[Path]]) -> list[Path]:
    """Every matched folder once, in the globs' order."""
    return list(dict.fromkeys(folder for found in globs.values() for folder in found))


def dotted(obj: Any, path: str, where: str) -> Any:
    """`final.test_inferred_ood` → obj["final"]["test_inferred_ood"]; a key that itself holds dots or
    slashes (`final_groups.test_inferred_ood/acc_eq`) is matched whole first; in a list an integer part indexes
    (`checkpoints.-1.t_score`: the last checkpoint's)."""
    node, rest = obj, path
    while rest:
        if isinstance(node, list):
            head, _, rest = rest.partition(".")
            if not re.fullmatch(r"-?\d+", head) or not -len(node) <= int(head) < len(node):
                raise UserError(f"{where} has no {path} ({head!r} is not an index of a list of {len(node)})")
            node = node[int(head)]
            continue
        if not isinstance(node, dict):
            raise UserError(f"{where} has no {path} (a {type(node).__name__} stands before {rest!r})")
        if rest in node:
            return node[rest]
        head, _, rest = rest.partition(".")
        if head not in node:
            raise UserError(f"{where} has no {path} ({head!r} is not one of {', '.join(sorted(node))})")
        node = node[head]
    return node


def metric(runs: list[RunRecord], path: str) -> Stat:
    values: list[float] = []
    name, inner = source(path)
    for run in runs:
        value = dotted(run.read(name, f"commit the run's {name} (`groklab record` copies analysis/)"), inner,
                       f"{run.path}/{name}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UserError(f"{run.path}/{name}: {inner} is {value!r}, not a number or null")
        if value is not None:
            values.append(value)
    return Stat(tuple(values), len(runs) - len(values))


# --- rendering ---------------------------------------------------------------------------------------------
def groups(runs: list[RunRecord], key: str | None, globs: dict[str, list[Path]]
           ) -> list[tuple[str | None, list[RunRecord]]]:
    """Runs by the value of a dotted config key, in the value's order; by glob (`globs`: each pattern's folders)
    for "runs"; one unlabelled group without a key."""
    if key is None:
        return [(None, runs)]
    if key == BY_GLOB:
        by_folder = {run.path: run for run in runs}
        return [(f"`{pattern}`", [by_folder[f] for f in found if f in by_folder]) for pattern, found in globs.items()]
    by_value: dict[str, tuple[Any, list[RunRecord]]] = {}
    for run in runs:
        value = dotted(run.config, key, f"{run.path}/{CONFIG}")
        by_value.setdefault(config.format_value(value), (value, []))[1].append(run)
    order = sorted(by_value, key=lambda s: (0, by_value[s][0], "") if _is_number(by_value[s][0]) else (1, 0, s))
    return [(f"{key} = {label}", by_value[label][1]) for label in order]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def measurement(claim: Claim, runs: list[RunRecord], globs: dict[str, list[Path]]) -> str:
    if claim.pending is not None:
        return f"pending: {claim.pending}"
    cells = []
    for label, members in groups(runs, claim.group_by, globs):
        few = len(members) < MIN_RUNS  # then said once for the group, not after every metric
        parts = [format_stat(path, metric(members, path), not few) for path in claim.measure]
        if claim.baseline:
            parts.append(f"baseline {format_stat(claim.baseline, metric(members, claim.baseline), not few)}")
        notes = "; ".join([f"n = {len(members)}"] * bool(label) + [FEW] * few)
        head = f"{label} ({notes}): " if label else f"({notes}) " if notes else ""
        cells.append(head + "; ".join(parts))
    return "<br>".join(cells)


def runs_cell(claim: Claim, root: Path, folders: list[Path]) -> str:
    """`3 in [`demo-regime/*`](runs/demo-regime/)`: a link to the pattern's folder where it exists."""
    links = []
    for pattern in claim.runs:
        fixed = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), Path(pattern).parts))
        exists = root.joinpath(*fixed).is_dir()
        links.append(f"[`{pattern}`]({'/'.join([root.name, *fixed])}/)" if exists else f"`{pattern}`")
    return f"{len(folders)} in {', '.join(links)}"


def anchors(markdown: str) -> dict[str, str]:
    """Each heading's text → its GitHub anchor (lower case, punctuation dropped, spaces → '-', '-1' on repeats)."""
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.setdefault(match.group(1).strip(), slug if count == 0 else f"{slug}-{count}")
    return out


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_row(claim: Claim, root: Path, sections: dict[str, str]) -> str:
    if claim.section not in sections:
        raise UserError(
            f"section {claim.section!r} is not a heading of results.md; "
            "give a heading's text without its #s"
        )
    globs = glob_folders(root, claim)
    folders = run_folders(globs)
    fix = f"commit each run's {SUMMARY} and {CONFIG}"
    runs = [] if claim.pending is not None else [load_run(f, fix) for f in folders]
    title = cell(claim.claim).replace("[", "\\[").replace("]", "\\]")
    return (
        f"| [{title}](#{sections[claim.section]}) | {cell(measurement(claim, runs, globs))} | "
        f"{cell(runs_cell(claim, root, folders))} | {cell(claim.verdict)} |\n"
    )


def render_table(claims: list[Claim], root: Path, markdown: str) -> str:
    sections = anchors(markdown)
    rows = []
    for claim in claims:
        with config.within(f"claim {claim.claim!r}: "):
            rows.append(render_row(claim, root, sections))
    return HEADER + "".join(rows)


# --- results.md --------------------------------------------------------------------------------------------
def splice(markdown: str, table: str, where: Path) -> str:
    """Replace what stands between the markers with `table`."""
    if markdown.count(BEGIN) != 1 or markdown.count(END) != 1 or markdown.index(BEGIN) > markdown.index(END):
        raise UserError(f"{where} needs one {BEGIN} line, then one {END} line, around the claims table")
    head, rest = markdown.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n\n{table}\n{END}{tail}"


def first_difference(old: str, new: str) -> str:
    pairs = zip(old.splitlines(), new.splitlines(), strict=False)
    line = next((a for a, b in pairs if a != b), None)
    return line[:80] if line is not None else "(a row added or removed)"


def check_seeds(claims: list[Claim], docs: Path) -> None:
    """The held-out protocol (groklab/held_out.py) over every claim: one UserError listing each violation on a
    line of its own."""
    root = docs / "runs"
    problems = []
    for i, claim in enumerate(claims):
        folders = [] if claim.pending is not None else run_folders(glob_folders(root, claim))
        name = f"[[claim]] {i + 1} ({claim.claim[:40]}…)"
        pending = claim.pending is not None
        problems += held_out.check(name, claim.seeds, folders, docs.resolve().parent, root, pending)
    if problems:
        raise UserError(f"{len(problems)} violation(s) of the held-out protocol in {docs / 'claims.toml'} "
                        "(groklab/held_out.py):\n" + "\n".join(problems))


def rebuild(docs: Path, check: bool = False) -> str:
    """Rebuild (or, with `check`, compare) the claims table of docs/results.md; returns a line to print."""
    results = docs / "results.md"
    claims = load_claims(docs / "claims.toml")
    if not results.is_file():
        raise UserError(f"{results} is missing; give --docs the folder that holds results.md and claims.toml")
    old = results.read_text()
    new = splice(old, render_table(claims, docs / "runs", old), results)
    pending = sum(c.pending is not None for c in claims)
    if check:
        if new != old:
            raise UserError(
                f"{results}'s claims table differs from what {docs / 'runs'} gives (first differing line: "
                f"{first_difference(old.split(BEGIN)[1], new.split(BEGIN)[1])!r}); run `groklab claims` and commit"
            )
        check_seeds(claims, docs)
        return f"{results}: the claims table is up to date ({len(claims)} claims, {pending} pending)"
    if new == old:
        return f"{results}: the claims table was already up to date ({len(claims)} claims, {pending} pending)"
    write_text(results, new)
    return f"wrote {results}: {len(claims)} claims, {pending} pending"
