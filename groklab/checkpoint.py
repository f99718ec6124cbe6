"""Atomic, verified checkpoints: `ckpt/step_0001234/` holding `model.safetensors` (weights),
`state.pt` (optimiser, filter and RNG state; loaded with `weights_only=True`, never unpickled) and
`manifest.json` (sha256 of each file). Written into a temp folder, then renamed: a checkpoint folder either
exists whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from groklab.errors import UserError
from groklab.runs import CKPT_DIR, atomic_dir, list_steps, step_dir  # where checkpoints live: the run's layout


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(run_dir: Path, step: int, model: nn.Module, state: dict) -> Path:
    """Write checkpoint `step` atomically; `state` is a dict of tensors / plain values."""
    final = step_dir(run_dir, step)
    # disk full, interrupted ...: the temp folder goes, no half-written checkpoint; older checkpoints stand
    with atomic_dir(final, replace=True) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        files = {name: sha256(tmp / name) for name in ("model.safetensors", "state.pt")}
        (tmp / "manifest.json").write_text(json.dumps({"step": step, "sha256": files}, indent=1))
    return final


def verify(path: Path) -> str | None:
    """None if the checkpoint folder is whole, else what is wrong with it."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        for name, digest in manifest["sha256"].items():
            if sha256(path / name) != digest:
                return f"{name} does not match its checksum"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest or file ({exc})"
    return None


def latest_good(run_dir: Path) -> int | None:
    """The newest checkpoint that verifies; a corrupt newer one is reported and skipped. Temp folders of
    writes that a crash interrupted are removed."""
    for tmp in (run_dir / CKPT_DIR).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for step in reversed(list_steps(run_dir)):
        problem = verify(step_dir(run_dir, step))
        if problem is None:
            return step
        warnings.warn(
            f"checkpoint step {step} is corrupt ({problem}); falling back to an older one", stacklevel=2
        )
    return None


def load(run_dir: Path, step: int, model: nn.Module) -> dict:
    """Load weights into `model` and return the state dict (tensors only, no pickled objects)."""
    path = step_dir(run_dir, step)
    problem = verify(path)
    if problem:
        raise UserError(f"{path}: checkpoint is corrupt ({problem}); delete it to resume from an older one")
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    except Exception as exc:  # safetensors raises several types for shape mismatches
        raise UserError(
            f"{path}: weights do not fit this model ({exc}); check the run's config.json"
        ) from None
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit this model (missing {missing}, unexpected {unexpected})")
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
