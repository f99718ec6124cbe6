"""Runs survive SIGKILL at random moments: resuming until done gives exactly the uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

import torch
from safetensors.torch import load_file

from groklab import checkpoint, runs
from tests.conftest import TINY

KILL_SETTINGS = TINY + ["train.steps=150", "train.eval_points=40", "train.ckpt_points=25"]


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


def test_sigkill_at_random_moments_then_resume_is_exact(tmp_path):
    env = os.environ | {"PYTHONHASHSEED": "0"}
    subprocess.run(train_args(tmp_path / "clean"), check=True, env=env, capture_output=True)
    run_dir = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    command = train_args(run_dir)
    while True:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        delay = rng.uniform(0.5, 4.0) if kills < 12 else None
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        if (run_dir / "config.json").exists():
            command = cli("train", "--resume", str(run_dir))
    assert kills >= 10
    clean_rows, clean_step, clean_weights = comparable(tmp_path / "clean")
    rows, step, weights = comparable(run_dir)
    assert rows == clean_rows and step == clean_step
    assert all(torch.equal(weights[k], clean_weights[k]) for k in clean_weights)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_step"] == 150
