"""The training loop, short and explicit: batch → forward → loss → backward → filter → transform → clip → step.

The whole dataset lives on the device as tensors (no DataLoader). The batch at update `s` is a pure function
of (seed, s): epoch e = s // steps_per_epoch is a seeded permutation. Together with checkpoints of model,
optimiser, filter and RNG state this makes `--resume` continue exactly like an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from groklab import checkpoint, config, runs, trackers, warm_start
from groklab.accelerators import GRAD_TRANSFORMS, LOSSES, diagnostics, make_filter
from groklab.errors import UserError
from groklab.grokking import summarize
from groklab.metrics import DeviceSplit, ProbeEvaluator, label_smoothed, training_loss
from groklab.model import Transformer, matrices
from groklab.optim import lr_factor, lr_scale, make_optimizer
from groklab.schedule import log_spaced_steps
from groklab.tasks import no_information, shortcut_baseline
from groklab.tasks.dataset import TaskData

TRAINER_PREFIX = "train"  # metrics.jsonl keys the trainer writes itself: train/loss, train/grad_norm_max, ...


class TrainingDiverged(UserError):
    """The loss or the gradient norm became non-finite, or the gradient norm exploded."""


def divergence_advice(cfg: config.RunConfig) -> str:
    """What to change, naming Grokfast's λ first when a filter amplifies the gradients."""
    f = cfg.filter
    if f.kind != "none":
        return (
            f"the Grokfast {f.kind} filter amplifies gradients with filter.amplify (λ) = {f.amplify:g}: "
            f"lower it (e.g. --set filter.amplify={f.amplify / 2:g}), or lower train.lr, or set train.grad_clip"
        )
    return "lower train.lr, or set train.grad_clip (e.g. --set train.grad_clip=1.0)"


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_autocast(cfg: config.TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    use_bf16 = cfg.autocast == "bf16" or (cfg.autocast == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    if device.type == "cpu" and not cpu_has_fast_bf16():
        warnings.warn(
            f"train.autocast=bf16 on a CPU without native bfloat16 ({torch.backends.cpu.get_cpu_capability()}: "
            "no AVX512-BF16 or AMX) is many times slower than float32; use --set train.autocast=none",
            stacklevel=2,
        )
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def cpu_has_fast_bf16() -> bool:
    """bfloat16 matrix kernels are fast only with AVX512-BF16 or AMX (seen: ~2 GFLOP/s on AVX2 vs ~120 float32)."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: trust the capability
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class Batches:
    """Seeded epoch permutations of the training set; `batch(step)` needs no carried RNG state."""

    n: int
    batch_size: int
    seed: int
    device: torch.device
    _epoch: int = -1
    _perm: torch.Tensor | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def batch(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=gen).to(self.device), epoch
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]


def schedules(cfg: config.TrainConfig) -> tuple[set[int], set[int]]:
    """Evaluation steps, and checkpoint steps chosen among them (so a checkpoint always follows an eval).
    Evaluations are log-spaced, so evenly spaced picks among them are log-spaced too: the fit → grok window
    gets its share of checkpoints for `groklab analyze`."""
    evals = log_spaced_steps(cfg.steps, cfg.eval_points, start=cfg.eval_start)
    picks = np.linspace(1, len(evals) - 1, max(cfg.ckpt_points, 1)).round().astype(int)
    ckpts = {evals[i] for i in picks if evals[i] > 0} | {cfg.steps}
    return set(evals), ckpts


def cpu_threads(tcfg: config.TrainConfig) -> int:
    return tcfg.threads or os.cpu_count() or 1


class Trainer:
    """One run: builds everything from the config, then `run()` trains to the end (or to grokking)."""

    def __init__(self, cfg: config.RunConfig, run_dir: Path, data: TaskData, progress: bool = True) -> None:
        self.cfg, self.run_dir, self.data, self.progress = cfg, run_dir, data, progress
        if TRAINER_PREFIX in data.probes:  # its <probe>/loss would overwrite the optimised loss in metrics.jsonl
            raise UserError(
                f"the dataset has a probe named {TRAINER_PREFIX!r}, whose metrics would overwrite the trainer's own "
                f"({TRAINER_PREFIX}/loss); rename it (e.g. train_sample) in the dataset's manifest.json"
            )
        self._lock = runs.lock(run_dir)
        tcfg = cfg.train
        torch.set_num_threads(cpu_threads(tcfg))
        self.device = pick_device(tcfg.device)
        torch.manual_seed(tcfg.seed)
        self.model = Transformer(cfg.model, len(data.vocab), data.n_ctx).to(self.device)
        # the compiled module shares the model's parameters; checkpoints and evaluation use the plain one
        self.step_model = torch.compile(self.model, dynamic=False) if tcfg.compile else self.model
        self.params = list(self.model.parameters())  # each shared or tied parameter once
        self.matrices = matrices(self.model)
        self.optimizer = make_optimizer(self.model, tcfg, lr_scale(cfg.filter), cfg.accelerator)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]  # what the schedule multiplies
        self.filter = make_filter(self.model, cfg.filter)
        self.grad_transform = GRAD_TRANSFORMS[tcfg.grad_transform](self.model, tcfg)
        self.loss = label_smoothed(LOSSES[tcfg.loss], tcfg.label_smoothing)
        self.autocast = make_autocast(tcfg, self.device)
        self.train_split = DeviceSplit.from_split(data.train, data.n_ctx, self.device)
        self.batches = Batches(len(data.train), tcfg.batch_size, tcfg.seed, self.device)
        eval_batch = tcfg.eval_batch_size or (1024 if self.device.type == "cpu" else 8192)
        self.evaluate = ProbeEvaluator(data, data.n_ctx, self.device, eval_batch)
        self.eval_steps, self.ckpt_steps = schedules(tcfg)
        self.step, self.elapsed = 0, 0.0
        self.loss_sum = torch.zeros((), dtype=torch.double, device=self.device)
        self.loss_count = 0
        self.grad_norm_max = torch.zeros((), device=self.device)  # since the last evaluation
        self.grad_weight_cos: torch.Tensor | None = None  # of the update before the next evaluation
        self.collapse_rows = diagnostics.collapse_sample(data.probes[data.roles["train"]], data.n_ctx, self.device)

    # --- state -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "optimizer": self.optimizer.state_dict(),
            "filter": self.filter.state_dict(),
            "grad_transform": self.grad_transform.state_dict(),
            "rng": rng,
        }

    def restore(self, step: int) -> None:
        state = checkpoint.load(self.run_dir, step, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.filter.load_state_dict(state["filter"])
        self.grad_transform.load_state_dict(state.get("grad_transform", {}))  # absent in runs older than it
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])

    # --- loop ------------------------------------------------------------------------------------------
    def update(self) -> None:
        """One optimiser update on the batch of the current step."""
        tcfg = self.cfg.train
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * lr_factor(self.step, tcfg)
        batch = self.train_split.rows(self.batches.batch(self.step))
        loss = training_loss(self.step_model, batch, self.autocast, self.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.step + 1 in self.eval_steps:  # the loss's own gradient, before anything changes it
            self.grad_weight_cos = diagnostics.grad_weight_cosine(self.params)
        self.filter()  # Grokfast: between backward() and clipping / step (Lee et al. 2024, Alg. 1)
        self.grad_transform()  # accelerators: ⊥Grad, EGD (the same contract, accelerators/base.py)
        if tcfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, tcfg.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        self.grad_norm_max = torch.maximum(self.grad_norm_max, norm)  # NaN and inf propagate
        self.optimizer.step()
        self.loss_sum += loss.detach()
        self.loss_count += 1
        self.step += 1
        if self.step % tcfg.check_every == 0:
            self.check_health()

    def check_health(self) -> None:
        """Stop with a clear message on a non-finite loss or an exploding (filtered) gradient norm."""
        loss = float(self.loss_sum) / max(1, self.loss_count)
        norm, limit = float(self.grad_norm_max), self.cfg.train.explode_grad_norm
        if math.isfinite(loss) and math.isfinite(norm) and not (limit and norm > limit):
            return
        what = (
            f"training loss became {loss}"
            if not math.isfinite(loss)
            else f"gradient norm reached {norm:.3g} (limit train.explode_grad_norm={limit:g})"
        )
        raise TrainingDiverged(
            f"{what} by step {self.step}; {divergence_advice(self.cfg)}. "
            f"The last good checkpoint stays in {self.run_dir}"
        )

    def log_eval(self) -> dict:
        row = {"step": self.step, "epoch": self.step / self.batches.steps_per_epoch, "lr": self._lr()}
        if self.loss_count:
            self.check_health()
            row["train/loss"] = float(self.loss_sum) / self.loss_count
            row["train/grad_norm_max"] = float(self.grad_norm_max)
        if self.grad_weight_cos is not None:
            row["train/grad_weight_cos"] = float(self.grad_weight_cos)
            self.grad_weight_cos = None
        row["train/softmax_collapse"] = diagnostics.softmax_collapse(self.model, self.collapse_rows)
        row["weights/norm"] = diagnostics.weight_norm(self.params)
        row["weights/matrix_norm"] = diagnostics.weight_norm(self.matrices)  # without LayerNorm gains and biases
        self.loss_sum.zero_()
        self.loss_count = 0
        self.grad_norm_max.zero_()
        row |= self.evaluate(self.model, self.autocast)
        row["elapsed_s"] = round(self.elapsed, 3)
        runs.append_metrics(self.run_dir, row)
        return row

    def _lr(self) -> float:
        """The lr of the next update (AdamW's with train.optimizer=muon)."""
        return self.base_lrs[0] * lr_factor(self.step, self.cfg.train)

    def grokked(self, rows: list[dict]) -> dict:
        return summarize(rows, self.data.roles, self.cfg.train.fit_threshold, self.cfg.train.grok_threshold)

    def run(self, stop_at: int | None = None) -> dict:
        """Train from the current step to the end, or pause at the first evaluation step at or after `stop_at`
        (on the same schedule; at an evaluation, as every checkpoint is, so `resume` continues exactly);
        returns the summary."""
        end = self.cfg.train.steps
        if stop_at is not None:
            end = min([s for s in self.eval_steps if s >= stop_at] + [end])
        rows = runs.read_metrics(self.run_dir)
        first = self.step
        mirrors = trackers.Mirrors(self.cfg, self.run_dir)  # TensorBoard / W&B copies of metrics.jsonl, if asked for
        bar = tqdm(
            total=self.cfg.train.steps,
            initial=first,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
        )
        tic = time.perf_counter()
        failed = True
        try:
            while True:
                if self.step in self.eval_steps and not (rows and rows[-1]["step"] == self.step):
                    self.elapsed += time.perf_counter() - tic
                    tic = time.perf_counter()
                    rows.append(self.log_eval())
                    bar.set_postfix_str(self._postfix(rows[-1]), refresh=False)
                stop = self.step >= end or (self.cfg.train.stop_on_grok and self._done(rows))
                if (self.step in self.ckpt_steps or stop) and self.step != first:
                    self.elapsed += time.perf_counter() - tic
                    tic = time.perf_counter()
                    checkpoint.save(self.run_dir, self.step, self.model, self.state())
                    mirrors.flush(rows, upto=self.step)  # rows up to a checkpoint are never recomputed: mirror them
                if stop:
                    break
                self.update()
                bar.update(1)
            mirrors.flush(rows, upto=self.step)  # a resume at the last step: killed between its checkpoint and mirrors
            failed = False
        finally:
            mirrors.close(failed)
        bar.close()
        # paused by stop_at before the schedule's end: the summary says so, and the run is not finished
        paused = self.step < self.cfg.train.steps and not (self.cfg.train.stop_on_grok and self._done(rows))
        summary = self.write_summary(rows, paused)
        self._lock.close()
        return summary

    def _done(self, rows: list[dict]) -> bool:
        found = self.grokked(rows)
        return found["grok_step"] is not None and found["fit_step"] is not None

    def _postfix(self, row: dict) -> str:
        roles = self.data.roles
        parts = [f"loss {row['train/loss']:.3f}" if "train/loss" in row else "loss -"]
        shown = dict.fromkeys(roles[role] for role in ("train", "test_id", "test_ood") if role in roles)
        parts += [f"{probe} {row[f'{probe}/acc']:.2f}" for probe in shown]  # probe names, as in metrics.jsonl
        return " ".join(parts)

    def write_summary(self, rows: list[dict], paused: bool = False) -> dict:
        summary = self.grokked(rows) | {
            "no_information": no_information(self.data),
            "final_step": self.step,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "elapsed_s": round(self.elapsed, 3),
        } | ({"paused": True} if paused else {})
        shortcut = shortcut_baseline(self.data)  # comparison, complex: the ranking shortcut per probe
        if shortcut:
            summary["shortcut"] = shortcut
        runs.write_summary(self.run_dir, summary)
        return summary


def start(
    cfg: config.RunConfig,
    run_dir: Path,
    data_dir: str | None = None,
    progress: bool = True,
    init_from: warm_start.WarmStart | None = None,
) -> Trainer:
    """A new run in `run_dir` (which must be empty or absent); `init_from`: start from that checkpoint's weights
    (groklab/warm_start.py), saved as the run's step-0 checkpoint so that a resume never needs the parent."""
    runs.check_new(run_dir)
    trackers.check_installed(cfg.train)  # a missing tensorboard / wandb stops us before the run folder exists
    data = runs.load_task_data(cfg, data_dir)
    if data.task != cfg.data.task:
        raise UserError(
            f"--data {data_dir} holds a {data.task!r} dataset but the config's data.task is "
            f"{cfg.data.task!r}; use a {data.task} config"
        )
    parent = warm_start.prepare(init_from, cfg) if init_from else None  # a bad parent is refused before mkdir
    run_dir.mkdir(parents=True, exist_ok=True)
    # config and meta first: from here on the folder is resumable, whenever the process dies
    runs.write_json(run_dir / runs.CONFIG, cfg.to_dict())
    source = {"generated": cfg.data.task} if not data_dir else {"dir": str(Path(data_dir).resolve())}
    meta = runs.meta(pick_device(cfg.train.device), source, cpu_threads(cfg.train))
    runs.write_json(run_dir / runs.META, meta | ({"init_from": parent.parent_record()} if parent else {}))
    trainer = Trainer(cfg, run_dir, data, progress)
    if parent:
        parent.apply(trainer)
    return trainer


def resume(run_dir: Path, progress: bool = True) -> Trainer:
    """Reopen a run at its newest good checkpoint, dropping metrics logged after it."""
    cfg, data = runs.open_run(run_dir)
    trackers.check_installed(cfg.train)
    trainer = Trainer(cfg, run_dir, data, progress)
    step = checkpoint.latest_good(run_dir)
    if step is not None:
        trainer.restore(step)
    else:
        warm_start.refuse_unfinished(run_dir)  # killed before its step-0 checkpoint: never resume from random weights
    runs.rewrite_metrics(run_dir, [r for r in runs.read_metrics(run_dir) if r["step"] <= trainer.step])
    return trainer
