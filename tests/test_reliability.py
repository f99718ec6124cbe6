"""Runs survive SIGKILL at random moments: resuming until done gives exactly the uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from groklab import checkpoint, runs
from tests.conftest import TINY

KILL_SETTINGS = TINY + ["train.steps=150", "train.eval_points=60", "train.ckpt_points=60"]  # ~50 checkpoints


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "groklab.cli", *args, "--quiet"]


def train_args(run_dir) -> list[str]:
    args = ["train", "demo", "--out", str(run_dir)]
    for item in KILL_SETTINGS:
        args += ["--set", item]
    return cli(*args)


def comparable(run_dir):
    rows = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]
    step = checkpoint.list_steps(run_dir)[-1]
    return rows, step, load_file(checkpoint.step_dir(run_dir, step) / "model.safetensors")


def checkpoints_of(run_dir) -> int:
    return len(checkpoint.list_steps(run_dir))


def kill_after_progress(proc: subprocess.Popen, run_dir, rng: random.Random, during_write: bool) -> bool:
    """SIGKILL `proc` once it has written a new checkpoint: at a random moment up to 0.2 s later, or (when
    `during_write`) as soon as the next checkpoint's temp folder appears. Progress-based, not time-based, so
    the test behaves the same on fast and slow machines. Returns False if the run finished first."""
    before = checkpoints_of(run_dir)
    while checkpoints_of(run_dir) <= before:
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    if during_write:
        deadline = time.monotonic() + 5
        while not any((run_dir / checkpoint.CKPT_DIR).glob(".tmp-*")) and time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            time.sleep(0.0005)
    else:
        time.sleep(rng.uniform(0.0, 0.2))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def test_sigkill_at_random_moments_then_resume_is_exact(tmp_path):
    env = os.environ | {"PYTHONHASHSEED": "0"}
    subprocess.run(train_args(tmp_path / "clean"), check=True, env=env, capture_output=True)
    run_dir = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    command = train_args(run_dir)
    while True:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 12 and kill_after_progress(proc, run_dir, rng, during_write=kills % 3 == 0):
            kills += 1
        else:
            assert proc.wait() == 0, proc.stderr.read().decode()
            break
        command = cli("train", "--resume", str(run_dir))
    assert kills >= 10
    clean_rows, clean_step, clean_weights = comparable(tmp_path / "clean")
    rows, step, weights = comparable(run_dir)
    assert rows == clean_rows and step == clean_step
    assert all(torch.equal(weights[k], clean_weights[k]) for k in clean_weights)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_step"] == 150
