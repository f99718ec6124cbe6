"""Grokking detection: when a run fit its training probes, when it grokked, and the summary.json fields that
follow from its logged evaluations.

It reads only metrics rows, so it works the same on a live run (a report on a running sweep) and on a finished
one (the trainer's summary). A step that was never reached is None (JSON null): there is no -1 step.
"""

from __future__ import annotations

NEVER = "never"  # how a step that was never reached (None) reads in tables and messages

# Roles whose probes are training facts: a run has "fit" once every one of them is memorised (Wang et al.'s
# models fit every atomic fact, ID and OOD, and every inferred training fact before they generalise; science.md §10).
FIT_ROLES = ("train", "atomic_id", "atomic_ood")


def first_step_at(rows: list[dict], key: str, threshold: float) -> int | None:
    """The first logged step whose `key` is at least `threshold`, or None if it never gets there."""
    return first_step_all_at(rows, [key], threshold)


def best_row(rows: list[dict], key: str) -> dict:
    """The first logged row at which `key` reaches its highest value."""
    return max((r for r in rows if r.get(key) is not None), key=lambda r: (r[key], -r["step"]))


def first_step_all_at(rows: list[dict], keys: list[str], threshold: float) -> int | None:
    """The first logged step at which every `key` is at least `threshold` together, or None."""
    for row in rows:
        if all(row.get(k) is not None and row[k] >= threshold for k in keys):
            return int(row["step"])
    return None


def fit_probes(roles: dict[str, str]) -> list[str]:
    """The probes that must be memorised for "fit": the train probe plus, for knowledge bases, the atomic facts."""
    return list(dict.fromkeys(roles[r] for r in FIT_ROLES if r in roles))


def grok_probe(roles: dict[str, str]) -> str:
    """The probe whose accuracy says the run grokked: the optional "grok" role, else the ID test."""
    # structural grokking is generalisation to the "gen" split, and comparison's grok signal is its OOD test
    # (the ID test is nearly reachable by a ranking shortcut): such tasks name it as the "grok" role
    return roles.get("grok", roles["test_id"])


def detect_grokking(rows: list[dict], fit_keys: list[str], test_key: str, fit: float, grok: float) -> dict:
    """fit_step (every training probe in `fit_keys` reaches `fit` at one evaluation; the first key is the
    train probe), grok_step (test reaches `grok`), their ratio, and the delay between the train probe and test
    reaching the *same* level `grok` (robust when train hovers just under `fit`; science.md §9)."""
    train_key = fit_keys[0]
    fit_step = first_step_all_at(rows, fit_keys, fit)
    grok_step = first_step_at(rows, test_key, grok)
    train_at_grok_level = first_step_at(rows, train_key, grok)
    return {
        "fit_step": fit_step,
        "grok_step": grok_step,
        "grok_over_fit": grok_step / fit_step if fit_step and grok_step else None,
        "train_reaches_grok_level_step": train_at_grok_level,
        "delay_steps": grok_step - train_at_grok_level
        if grok_step is not None and train_at_grok_level is not None
        else None,
    }


def delay_epochs(rows: list[dict], found: dict) -> float | None:
    """Epochs from the train probe reaching the grok level to the grok (`found`: detect_grokking's steps), as
    logged; None if either never happened."""
    epoch = {r["step"]: r.get("epoch") for r in rows}
    start, end = epoch.get(found.get("train_reaches_grok_level_step")), epoch.get(found.get("grok_step"))
    return end - start if start is not None and end is not None else None


def summarize(rows: list[dict], roles: dict[str, str], fit: float, grok: float) -> dict:
    """The fields of summary.json that follow from the logged evaluations: fit and grok steps (and their epochs,
    as logged), the probe roles and the last evaluation's accuracies. One function for the trainer's summary
    and for reports on runs still training."""
    grokking = grok_probe(roles)
    memorised = fit_probes(roles)
    found = detect_grokking(rows, [f"{p}/acc" for p in memorised], f"{grokking}/acc", fit, grok)
    epoch = {r["step"]: r.get("epoch") for r in rows}
    last = rows[-1] if rows else {}
    best = {k.removesuffix("/acc"): best_row(rows, k) for k in last if k.endswith("/acc")}
    return found | {
        "fit_epoch": epoch.get(found["fit_step"]),
        "grok_epoch": epoch.get(found["grok_step"]),
        # the delay in epochs (Wang et al. compare it across |E| at fixed φ): train probe → test at the same level
        "delay_epochs": delay_epochs(rows, found),
        "fit_probes": memorised,
        "grok_probe": grokking,
        # when each training probe first reached the fit level on its own (which one was last to be memorised)
        "fit_step_of": {p: first_step_at(rows, f"{p}/acc", fit) for p in memorised},
        "roles": roles,
        "final": {k.removesuffix("/acc"): v for k, v in last.items() if k.endswith("/acc")},
        # each probe's best evaluation and its first step: does a test rise late, or peak and fall (Dyck)?
        "best": {p: row[f"{p}/acc"] for p, row in best.items()},
        "best_step": {p: int(row["step"]) for p, row in best.items()},
        # breakdowns (comparison: per label, per value gap), as `probe/acc_group` -> accuracy
        "final_groups": {k: v for k, v in last.items() if "/acc_" in k},
    }
