"""Mirrors of metrics.jsonl in TensorBoard (`train.tensorboard = true`) and Weights & Biases, offline only
(`train.wandb = "offline"`): viewers of a run, never its record. metrics.jsonl stays the source of truth; every
numeric key of a row becomes a scalar at the row's step.

A row is mirrored once it is durable, i.e. once a checkpoint at or after its step is saved: a resume drops and
recomputes the rows after its checkpoint, never those before. So the mirrors lag metrics.jsonl by up to one
checkpoint interval, and the trainer flushes them right after each `checkpoint.save` and at the end of `run()`.
The ledger `.mirrored.json` records the last step each mirror holds for certain; a resumed run mirrors only the
rows after it, so no point is ever written twice, also after `kill -9`:

- TensorBoard: the writer is flushed to disk before the ledger is written, and reopened with
  `purge_step = ledger step + 1`, which hides whatever an earlier process wrote after the ledger (killed between
  its flush and the ledger write). Exact.
- W&B offline writes through its own service process, so a point handed to `run.log` is on disk only once
  `run.finish()` returns (seen: a `kill -9` right after 500 `log` calls left 138 in the file). Each process is
  therefore one part, `wandb/offline-run-<time>-<id>/`, which the ledger counts (`wandb`, `wandb_parts`) only
  after `finish()`. A part that is not in the ledger was killed (or finished just before its ledger write): the
  next process deletes it and logs its rows again from metrics.jsonl, so the parts never overlap. Exact as well;
  the cost is that a process's part counts only when the process ends (W&B cannot sync an offline run still
  being written anyway). `wandb sync --id <id> RUN/wandb/offline-run-*` uploads the parts, in order, as one run.
  Not covered by a test: W&B's service outlives a killed process by a second or two (seen); a resume within
  that time deletes the part while the service may still be writing to it.

Nothing leaves the machine at run time: there is no online mode. Imports are lazy; a missing package is one
`error:` line naming the extra, raised by `check_installed` before `train.start` makes the run folder.
"""

from __future__ import annotations

import importlib
import shutil
import uuid
from pathlib import Path

from groklab import config, runs
from groklab.errors import UserError

NONE_YET = -1  # ledger step of a mirror that holds nothing
PROJECT = "groklab"  # the W&B project offline runs belong to (`wandb sync --project` overrides it)
EXTRAS = {"tensorboard": "tb", "wandb": "wandb"}  # package -> pyproject extra


def wanted(tcfg: config.TrainConfig) -> list[str]:
    """The mirrors a run's config asks for, by package name."""
    return [name for name, on in (("tensorboard", tcfg.tensorboard), ("wandb", tcfg.wandb != "off")) if on]


def check_installed(tcfg: config.TrainConfig) -> None:
    for name in wanted(tcfg):
        require(name, getattr(tcfg, name))


def require(package: str, setting: object):
    """Import `package`, or stop with one line naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        off = "false" if package == "tensorboard" else "off"
        raise UserError(
            f"train.{package}={config.format_value(setting)} needs the {package} package: "
            f"pip install -e '.[{EXTRAS[package]}]' (or set train.{package}={off})"
        ) from None


def scalars(row: dict) -> dict[str, float]:
    """Every numeric value of a metrics row but its step (NaN and inf too: the mirror shows what was logged)."""
    numeric = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {k: float(v) for k, v in numeric.items() if k != "step"}


class TensorBoard:
    """Event files in RUN/tensorboard/; durable at each flush."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, cfg: config.RunConfig, ledger: dict) -> None:
        require("tensorboard", cfg.train.tensorboard)
        from torch.utils.tensorboard import SummaryWriter

        self.step = ledger.get(self.name, NONE_YET)
        # hides points an earlier process wrote after the ledger's step (it died before writing the ledger)
        self.writer = SummaryWriter(str(run_dir / runs.TENSORBOARD_DIR), purge_step=self.step + 1)

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            for key, value in scalars(row).items():
                self.writer.add_scalar(key, value, global_step=row["step"])
        self.writer.flush()  # on disk before the ledger says so
        self.step = rows[-1]["step"]

    def durable(self) -> dict:
        return {self.name: self.step}

    def close(self, failed: bool) -> None:
        self.writer.close()


class WandbOffline:
    """One offline W&B part per process in RUN/wandb/; durable when the part is finished (see the docstring)."""

    name = "wandb"

    def __init__(self, run_dir: Path, cfg: config.RunConfig, ledger: dict) -> None:
        wandb = require("wandb", cfg.train.wandb)
        self.step = ledger.get(self.name, NONE_YET)
        self.run_id = ledger.get("wandb_id") or uuid.uuid4().hex[:16]  # random: a re-made run is a new W&B run
        self.parts = list(ledger.get("wandb_parts", []))
        for part in (run_dir / runs.WANDB_DIR).glob("offline-run-*"):
            if part.name not in self.parts:  # a killed process's part: its rows are logged again below
                shutil.rmtree(part)
        settings = wandb.Settings(
            mode="offline",  # never online, whatever WANDB_MODE says; the argument below wins over it too
            silent=True,
            console="off",  # leave stdout and the progress bar alone
            save_code=False,
            disable_git=True,
            x_disable_stats=True,
            x_disable_machine_info=True,
            reinit="create_new",  # never touch (or log into) a W&B run the caller has open
        )
        self.run = wandb.init(
            mode="offline",
            dir=str(run_dir),
            project=PROJECT,
            name=run_dir.name,
            id=self.run_id,
            config=cfg.to_dict(),
            settings=settings,
        )
        self.finished = False

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self.run.log(scalars(row), step=row["step"])
        self.step = rows[-1]["step"]

    def durable(self) -> dict:
        if not self.finished:
            return {}
        return {self.name: self.step, "wandb_id": self.run_id, "wandb_parts": self.parts}

    def close(self, failed: bool) -> None:
        part = Path(self.run.dir).parent.name  # RUN/wandb/offline-run-<time>-<id>/files
        self.run.finish(exit_code=1 if failed else 0)  # returns once W&B has written everything
        self.parts.append(part)
        self.finished = True


MIRRORS = {"tensorboard": TensorBoard, "wandb": WandbOffline}


class Mirrors:
    """The mirrors a run's config asks for, and the ledger of what each holds. No mirrors: no files."""

    def __init__(self, cfg: config.RunConfig, run_dir: Path) -> None:
        self.path = run_dir / runs.MIRRORED
        names = wanted(cfg.train)
        self.ledger = runs.read_json(self.path) if names and self.path.is_file() else {}
        self.mirrors = [MIRRORS[name](run_dir, cfg, self.ledger) for name in names]

    def flush(self, rows: list[dict], upto: int) -> None:
        """Hand each mirror the rows with steps in (what it holds, upto]; `upto` must be a checkpoint's step."""
        for mirror in self.mirrors:
            new = [r for r in rows if mirror.step < r["step"] <= upto]
            if new:
                mirror.write(new)
        self._save()

    def close(self, failed: bool = False) -> None:
        for mirror in self.mirrors:
            mirror.close(failed)
        self._save()

    def _save(self) -> None:
        ledger = dict(self.ledger)
        for mirror in self.mirrors:
            ledger |= mirror.durable()
        if ledger != self.ledger:
            runs.write_json(self.path, ledger)
            self.ledger = ledger
