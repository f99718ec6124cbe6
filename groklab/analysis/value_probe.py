"""Value probe (comparison): is an entity's attribute value linearly readable from the residual stream at the
entity's position — for ID keys the probe was not fitted on, and for OOD keys?

Wang et al.'s comparison circuit retrieves v1 at e1 and v2 at e2 in the lower layers and compares them above.
A model that generalises OOD must retrieve the OOD entities' values there too: their atomic facts are trained.
A ranking shortcut instead keeps a score per (attribute, entity) learned from the comparisons themselves, which
exists only for ID entities. The probe is a ridge regression from the state after each block at e1 (and at e2)
to the value's ordinal (0 … n_values − 1), pooled over attributes, fitted on a fixed half of the ID
(attribute, entity) keys and read as R² on the other half (held-out ID keys) and on the OOD keys, each against
its own mean (so predicting a constant scores ≤ 0: the no-information level is 0). High held-out ID R² with OOD
R² ≈ 0 means the comparison context holds the values of ID entities only: it does not read the atomic memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.methods import Measure
from groklab.analysis.over_checkpoints import pick_rows
from groklab.analysis.targets import token_positions
from groklab.errors import UserError
from groklab.hooks import resid_name, run_with_cache
from groklab.model import Transformer
from groklab.tasks.dataset import Split, TaskData
from groklab.tasks.knowledge import concat
from groklab.tasks.vocab import value_tokens

RIDGE = 1e-3  # × the mean eigenvalue of the fit states' covariance: a scale-free, light ridge
ID_PROBES = ("train_inferred", "test_inferred_id")  # where ID keys are read (comparisons of ID entities)
POSITIONS = ("e1", "e2")  # the entity positions; at e1 the value is v1, at e2 it is v2
ATOMIC_PROBES = ("id_atomic", "ood_atomic")  # the control: atomic facts `e attr -> value`, ID then OOD keys
ATOMIC_POSITION = 1  # the attribute token of an atomic fact, where its value is produced


def fit_ridge(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Weights and intercept of a ridge regression of y [n] on x [n, d] (float64), intercept unpenalised."""
    mean_x, mean_y = x.mean(0), y.mean()
    xc = x - mean_x
    gram = xc.T @ xc / len(x)
    lam = RIDGE * torch.diagonal(gram).mean().clamp_min(1e-12)
    w = torch.linalg.solve(gram + lam * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ (y - mean_y) / len(x))
    return w, mean_y - mean_x @ w


def r2(pred: Tensor, y: Tensor) -> float:
    """1 − SSE / SST against y's own mean (≤ 0 for any constant prediction); NaN for fewer than 2 rows."""
    if len(y) < 2:
        return float("nan")
    sst = ((y - y.mean()) ** 2).sum()
    return float(1 - ((pred - y) ** 2).sum() / sst) if sst > 0 else float("nan")


def probe_scores(states: Tensor, values: Tensor, fit: Tensor, groups: dict[str, Tensor]) -> dict[str, float]:
    """Fit on the rows `fit` (bool), then R² and the fraction of exact values (the prediction rounded) on each
    group of rows: {"r2_<group>": …, "exact_<group>": …}."""
    x, y = states.double(), values.double()
    w, b = fit_ridge(x[fit], y[fit])
    pred = x @ w + b
    out = {}
    for name, rows in groups.items():
        out[f"r2_{name}"] = r2(pred[rows], y[rows])
        out[f"exact_{name}"] = float((pred[rows].round() == y[rows]).double().mean()) if rows.any() else float("nan")
    return out


def key_halves(attribute: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """True for the (attribute, entity) keys in the probe's fit half: a fixed random half (seed 0) of the keys,
    so a held-out key's value is never seen by the probe at e1 or at e2."""
    keys = np.unique(np.stack([attribute, entity], 1), axis=0)
    chosen = keys[np.random.default_rng(0).permutation(len(keys))[: len(keys) // 2]]
    fit = {(int(a), int(e)) for a, e in chosen}
    return np.array([(int(a), int(e)) in fit for a, e in zip(attribute, entity, strict=True)], dtype=bool)


def reading(split: Split, is_id: np.ndarray, position: int, entity: str, value: str, value_base: int) -> dict:
    """One probe reading: the rows' tokens, the input position read, the value there (its ordinal), and which
    rows fit the probe (half the ID keys) and which score it (the other half; the OOD rows)."""
    attribute, entities = np.asarray(split.fields["attribute"]), np.asarray(split.fields[entity])
    in_fit = np.zeros(len(split), dtype=bool)
    in_fit[is_id] = key_halves(attribute[is_id], entities[is_id])
    return {
        "tokens": torch.as_tensor(split.tokens),
        "position": position,
        "values": torch.as_tensor(np.asarray(split.fields[value]) - value_base),
        "fit": torch.as_tensor(in_fit),
        "groups": {"id_heldout": torch.as_tensor(is_id & ~in_fit), "ood": torch.as_tensor(~is_id)},
    }


def prepare(data: TaskData, rows: Split) -> Measure:
    """The value probe at every checkpoint: `rows` are the OOD comparisons (the default split), the ID ones are
    as many rows again from each of train_inferred and test_inferred_id (`pick_rows`: the same fixed picks as
    every method's rows). A control reads the atomic facts `e attr → value` at the attribute position (where the
    answer is produced) for ID and OOD keys alike: OOD values are stored there, whether or not the comparison
    reads them."""
    if data.task != "comparison":
        raise UserError(f"the value probe reads comparison facts, not {data.task!r}")
    id_parts = [pick_rows(s, len(rows)) for n, s in data.probes.items() if n in ID_PROBES]
    if not id_parts:
        raise UserError("the value probe needs ID comparisons (train_inferred or test_inferred_id); this run has none")
    id_rows = concat(id_parts)
    id_keys = {(int(a), int(e)) for pos in POSITIONS for a, e in zip(id_rows.fields["attribute"], id_rows.fields[pos],
                                                                   strict=True)}
    if any((int(a), int(e)) in id_keys for pos in POSITIONS
           for a, e in zip(rows.fields["attribute"], rows.fields[pos], strict=True)):
        raise UserError("the value probe reads OOD comparisons beside ID ones, and this split has ID entities; "
                        "use --split test_inferred_ood (the default)")
    value_base = data.vocab.tokens.index(value_tokens(1)[0])  # value tokens are contiguous: <0> <1> …
    every = concat([id_rows, rows])
    is_id = np.arange(len(every)) < len(id_rows)
    at = token_positions("comparison", every)
    readings = {pos: reading(every, is_id, at[pos], pos, value, value_base)
                for pos, value in zip(POSITIONS, ("v1", "v2"), strict=True)}
    atomic_parts = [data.probes[n] for n in ATOMIC_PROBES if n in data.probes]
    if len(atomic_parts) == len(ATOMIC_PROBES):
        atomic = concat(atomic_parts)
        atomic_is_id = np.arange(len(atomic)) < len(atomic_parts[0])
        readings["atomic"] = reading(atomic, atomic_is_id, ATOMIC_POSITION, "entity", "value", value_base)

    def at_checkpoint(model: Transformer, device: torch.device) -> dict:
        names = [resid_name(i) for i in range(model.cfg.depth + 1)]
        out = {}
        for name, r in readings.items():
            with torch.no_grad():
                _, cache = run_with_cache(model, r["tokens"].to(device), names)
            per_layer = [probe_scores(cache[layer][:, r["position"]].cpu(), r["values"], r["fit"], r["groups"])
                         for layer in names]
            out[name] = {key: [scores[key] for scores in per_layer] for key in per_layer[0]}
        return {"probe": out}

    about = {
        "positions": {name: r["position"] for name, r in readings.items()},
        "n_rows": {name: {"fit": int(r["fit"].sum()), **{g: int(rows.sum()) for g, rows in r["groups"].items()}}
                   for name, r in readings.items()},
    }
    return Measure(at_checkpoint, about)
