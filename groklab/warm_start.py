"""Warm starts: a new run that starts from another run's checkpoint instead of random weights.

    groklab train logic --init-from runs/a            # run a's newest good checkpoint
    groklab train logic --init-from runs/a@1200       # its checkpoint at step 1200
    groklab train logic --init-from runs/a@grok       # its first checkpoint at or after its grok step
    groklab train logic --init-from runs/a --init-from-state   # optimiser and filter state too

The new run keeps its own config and data. Weights move by parameter name. Vocabularies differ between tasks,
so embedding and unembedding rows are mapped by token name: a token both vocabularies hold keeps its trained
row, a token new to this run keeps this run's fresh initial row; positional rows are mapped by index (the
first min(n_ctx) carry over). Every other tensor must have the same shape, so the architectures must agree:
one UserError names each setting that differs. With `--init-from-state` the optimiser's and the gradient
filter's per-parameter state is mapped the same way (a new row's state starts at zero, as a fresh optimiser's
would); otherwise both start fresh.

The warm start happens once, when the run is created, and is saved as the run's own checkpoint at step 0;
`--resume` reads the run's checkpoints only, never the parent's, so resume is exact and survives the parent
being deleted. meta.json's `init_from` records the parent {run, step, checksum of its weights} and the mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from groklab import checkpoint, config, runs
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.optim import lr_scale, make_optimizer
from groklab.tasks.dataset import Vocab

if TYPE_CHECKING:
    from groklab.train import Trainer

# model settings that decide the tensors' shapes or what the carried weights compute
ARCHITECTURE = (
    "n_layers", "loops", "inject_input", "d_model", "n_heads", "d_mlp", "tie_embeddings", "residual", "activation"
)
TOKEN_ROWS = ("embed.weight", "unembed.weight")  # parameters whose rows are tokens
POSITION_ROWS = ("pos_embed.weight",)  # parameters whose rows are positions
SELECTORS = ("last", "grok")  # RUN_DIR@last (the default) or RUN_DIR@grok, besides RUN_DIR@STEP
MAX_LISTED = 12  # new and dropped token names listed in meta.json (the counts are always there)


@dataclass(frozen=True)
class WarmStart:
    """Where a run starts from: `run_dir`'s checkpoint `step` (a step number, "last" or "grok")."""

    run_dir: Path
    step: int | str = "last"
    with_state: bool = False  # carry the optimiser's and the gradient filter's state too

    def __str__(self) -> str:
        return f"{self.run_dir}@{self.step}"


def parse(spec: str, with_state: bool = False) -> WarmStart:
    """`RUN_DIR`, `RUN_DIR@STEP`, `RUN_DIR@last` or `RUN_DIR@grok`."""
    path, at, step = spec.rpartition("@")
    if not at:
        return WarmStart(Path(spec), "last", with_state)
    if step.isdigit():
        return WarmStart(Path(path), int(step), with_state)
    if step in SELECTORS:
        return WarmStart(Path(path), step, with_state)
    raise UserError(f"--init-from {spec}: the part after @ must be a checkpoint step, last or grok (RUN_DIR@1200)")


def token_map(old: Vocab, new: Vocab) -> np.ndarray:
    """For each token id of `new`, the id of the same token name in `old`, or -1 where `old` has no such token."""
    index = old.index()
    return np.array([index.get(token, -1) for token in new.tokens], dtype=np.int64)


def position_map(old_ctx: int, new_ctx: int) -> np.ndarray:
    """Position i carries over while the parent had it."""
    return np.where(np.arange(new_ctx) < old_ctx, np.arange(new_ctx), -1)


def carry(old: Tensor, fresh: Tensor, rows: np.ndarray | None, axis: int = 0) -> Tensor:
    """`fresh` with the rows (along `axis`) that `rows` maps taken from `old`; without `rows`, `old` itself."""
    if rows is None:
        if old.shape != fresh.shape:
            raise UserError(f"a tensor of shape {tuple(old.shape)} cannot replace one of {tuple(fresh.shape)}")
        return old.detach().clone().to(fresh)
    out = fresh.detach().clone()
    have = np.flatnonzero(rows >= 0)
    src = torch.from_numpy(rows[have]).to(old.device)
    out.index_copy_(axis, torch.from_numpy(have).to(out.device), old.detach().index_select(axis, src).to(out))
    return out


# --- choosing the parent's checkpoint ------------------------------------------------------------------------
def good_steps(run_dir: Path) -> list[int]:
    """Checkpoint steps that verify, oldest first (read-only: a parent still training keeps its temp folders)."""
    return [s for s in runs.list_steps(run_dir) if checkpoint.verify(runs.step_dir(run_dir, s)) is None]


def select_step(warm: WarmStart) -> int:
    """The parent's checkpoint step that `warm.step` names; a UserError saying what exists otherwise."""
    steps = good_steps(warm.run_dir)
    if not steps:
        raise UserError(f"--init-from {warm}: {warm.run_dir} has no complete checkpoint yet; train it first")
    if warm.step == "last":
        return steps[-1]
    if warm.step == "grok":
        grok = runs.load_run(warm.run_dir).stats().get("grok_step")  # a live parent's too, as reports read it
        later = [s for s in steps if grok is not None and s >= grok]
        if not later:
            why = "never grokked" if grok is None else f"grokked at step {grok} but has no checkpoint since"
            raise UserError(f"--init-from {warm}: {warm.run_dir} {why}; give RUN_DIR@STEP or RUN_DIR@last")
        return later[0]
    if warm.step not in steps:
        shown = ", ".join(map(str, steps[:5])) + (f", ..., {steps[-1]}" if len(steps) > 5 else "")
        raise UserError(f"--init-from {warm}: no complete checkpoint at step {warm.step}; it has {shown}")
    return int(warm.step)


# --- the parent ---------------------------------------------------------------------------------------------
@dataclass
class Parent:
    """A parent checkpoint loaded into a model of the parent's own shape, checked against the new config."""

    warm: WarmStart
    step: int
    checksum: str  # sha256 of the checkpoint's model.safetensors (from its verified manifest)
    cfg: config.RunConfig
    vocab: Vocab
    model: Transformer
    state: dict

    def apply(self, trainer: Trainer) -> dict:
        """Carry weights (and, if asked, optimiser and filter state) into `trainer`, save them as the run's
        checkpoint at step 0 and record the parent in meta.json; returns that record."""
        rows = self.row_maps(trainer)
        parent = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, param in trainer.model.named_parameters():
                param.copy_(carry(parent[name], param, rows.get(name)))
        record = self.record(trainer, rows)
        if self.warm.with_state:
            record["optimizer"] = self.carry_optimizer(trainer, rows)
            record["filter"] = self.carry_filter(trainer, rows)
        meta = runs.read_json(trainer.run_dir / runs.META)
        runs.write_json(trainer.run_dir / runs.META, meta | {"init_from": record})
        checkpoint.save(trainer.run_dir, 0, trainer.model, trainer.state())  # last: from here on resume needs no parent
        return record

    def row_maps(self, trainer: Trainer) -> dict[str, np.ndarray]:
        tokens = token_map(self.vocab, trainer.data.vocab)
        positions = position_map(self.model.n_ctx, trainer.model.n_ctx)
        return {name: tokens for name in TOKEN_ROWS} | {name: positions for name in POSITION_ROWS}

    def parent_record(self) -> dict:
        """meta.json's `init_from` as the run is created; `apply` adds the mapping once the weights are in."""
        return {
            "run": str(self.warm.run_dir.resolve()),
            "step": self.step,
            "asked": self.warm.step,
            "checksum": self.checksum,
            "task": self.cfg.data.task,
            "with_state": self.warm.with_state,
        }

    def record(self, trainer: Trainer, rows: dict[str, np.ndarray]) -> dict:
        tokens, new_vocab = rows[TOKEN_ROWS[0]], trainer.data.vocab
        new = [t for t, i in zip(new_vocab.tokens, tokens, strict=True) if i < 0]
        dropped = sorted(set(self.vocab.tokens) - set(new_vocab.tokens), key=self.vocab.tokens.index)
        shared_positions = int((rows[POSITION_ROWS[0]] >= 0).sum())
        return self.parent_record() | {
            "tokens": {
                "shared": int((tokens >= 0).sum()),
                "new": len(new),
                "dropped": len(dropped),
                "new_names": new[:MAX_LISTED],
                "dropped_names": dropped[:MAX_LISTED],
            },
            "positions": {"shared": shared_positions, "new": trainer.model.n_ctx - shared_positions},
            "optimizer": "fresh",
            "filter": "fresh",
        }

    def carry_optimizer(self, trainer: Trainer, rows: dict[str, np.ndarray]) -> str:
        """Per-parameter optimiser state by parameter name; tensors shaped like their parameter get its row map."""
        old = make_optimizer(self.model, self.cfg.train, lr_scale(self.cfg.filter))
        old.load_state_dict(self.state["optimizer"])
        name_of = {id(p): n for n, p in self.model.named_parameters()}
        params = dict(trainer.model.named_parameters())
        targets = {id(p): part for part in parts(trainer.optimizer) for g in part.param_groups for p in g["params"]}
        for part in parts(old):
            for p, state in part.state.items():
                name = name_of[id(p)]
                new = params[name]
                targets[id(new)].state[new] = {
                    k: carry(v, torch.zeros_like(new), rows.get(name)) if torch.is_tensor(v) and v.shape == p.shape
                    else (v.clone() if torch.is_tensor(v) else v)
                    for k, v in state.items()
                }
        return "carried"

    def carry_filter(self, trainer: Trainer, rows: dict[str, np.ndarray]) -> str:
        """The gradient filter's state (Grokfast EMA μ, MA window) by parameter name, when both runs use the
        same kind of filter (and, for MA, the same window); else the new run's filter starts fresh."""
        old, new = self.cfg.filter, trainer.cfg.filter
        if old.kind != new.kind or (new.kind == "ma" and old.window != new.window):
            return f"fresh (the parent's filter is {old.kind}, window {old.window}; this run's {new.kind})"
        params, parent = dict(trainer.model.named_parameters()), dict(self.model.named_parameters())
        state = {}
        for key, value in self.state["filter"].items():
            name = key.split(".", 1)[1]
            fresh = torch.zeros(value.shape[: value.ndim - parent[name].ndim] + params[name].shape, dtype=value.dtype)
            mapped = value.ndim >= parent[name].ndim > 0
            state[key] = carry(value, fresh, rows.get(name), value.ndim - parent[name].ndim) if mapped else value
        trainer.filter.load_state_dict(state)
        return "carried"


def refuse_unfinished(run_dir: Path) -> None:
    """A warm-started run without any checkpoint was killed before its step-0 checkpoint was saved: resuming
    it would silently train from random weights, so it is refused."""
    parent = runs.read_json(run_dir / runs.META).get("init_from")
    if parent:
        raise UserError(
            f"{run_dir} was to start from {parent['run']}@{parent['step']} but was stopped before that checkpoint "
            "was copied in; delete the folder and run the same `groklab train ... --init-from` again"
        )


def parts(optimizer) -> list[torch.optim.Optimizer]:
    """The torch optimisers inside ours (Muon with AdamW is two)."""
    return list(optimizer.parts.values()) if hasattr(optimizer, "parts") else [optimizer]


def architecture_differences(old: config.ModelConfig, new: config.ModelConfig) -> list[tuple[str, object, object]]:
    """(setting, parent's value, this run's value) for each ARCHITECTURE setting that differs: what a warm start
    cannot bridge (also checked across a curriculum's stages before any trains)."""
    return [(k, getattr(old, k), getattr(new, k)) for k in ARCHITECTURE if getattr(old, k) != getattr(new, k)]


def check_architecture(warm: WarmStart, old: config.ModelConfig, new: config.ModelConfig) -> None:
    differ = architecture_differences(old, new)
    if differ:
        show = config.format_value
        what = "; ".join(f"model.{k} is {show(a)} there, {show(b)} here" for k, a, b in differ)
        fix = " ".join(f"--set model.{k}={config.format_value(a)}" for k, a, _ in differ)
        raise UserError(f"--init-from {warm}: the architectures differ ({what}); use the parent's: {fix}")


def prepare(warm: WarmStart, cfg: config.RunConfig) -> Parent:
    """Load and check the parent before the new run's folder exists, so a bad --init-from leaves nothing behind."""
    if not runs.is_run(warm.run_dir):
        raise UserError(f"--init-from {warm}: {warm.run_dir} is not a run directory (no {runs.CONFIG})")
    parent_cfg, data = runs.open_run(warm.run_dir)
    check_architecture(warm, parent_cfg.model, cfg.model)
    if warm.with_state and parent_cfg.train.optimizer != cfg.train.optimizer:
        raise UserError(
            f"--init-from-state: the parent's train.optimizer is {parent_cfg.train.optimizer}, this run's "
            f"{cfg.train.optimizer}; their states do not convert: drop --init-from-state or use the same optimizer"
        )
    step = select_step(warm)
    model = Transformer(parent_cfg.model, len(data.vocab), data.n_ctx)
    state = checkpoint.load(warm.run_dir, step, model)
    manifest = json.loads((runs.step_dir(warm.run_dir, step) / "manifest.json").read_text())
    return Parent(warm, step, manifest["sha256"]["model.safetensors"], parent_cfg, data.vocab, model, state)
