"""Training throughput (steps/s, sequences/s) of the real trainer, on whatever device is present.

    python benchmarks/throughput.py                       # demo and paper-shaped configs
    python benchmarks/throughput.py --config demo --steps 300 --set train.threads=2

Times `Trainer.update()` (forward, loss, backward, filter, clip, AdamW) on the task's real data after a few
warm-up updates; evaluation is timed separately (one pass over all probes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from groklab import config, train

DEFAULTS = {"demo": 300, "composition-paper": 5}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(preset: str, steps: int, overrides: list[str]) -> dict:
    cfg = config.load(preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = train.start(cfg, Path(tmp) / "run", progress=False)
        for _ in range(min(5, steps)):
            trainer.update()
        sync(trainer.device)
        tic = time.perf_counter()
        for _ in range(steps):
            trainer.update()
        sync(trainer.device)
        step_s = (time.perf_counter() - tic) / steps
        tic = time.perf_counter()
        trainer.evaluate(trainer.model, trainer.autocast)
        eval_s = time.perf_counter() - tic
    n_params = sum(p.numel() for p in trainer.model.parameters())
    return {
        "config": preset,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "params": n_params,
        "steps_per_s": 1 / step_s,
        "seqs_per_s": cfg.train.batch_size / step_s,
        "eval_s": eval_s,
        "eval_examples": len(trainer.evaluate.all),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="preset(s); default: demo and composition-paper")
    parser.add_argument("--steps", type=int, help="timed updates (default per preset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    for preset in args.config or list(DEFAULTS):
        r = measure(preset, args.steps or DEFAULTS.get(preset, 20), args.set)
        print(
            f"{r['config']:>20s} on {r['device']} ({r['threads']} threads, {r['params']:,} params): "
            f"{r['steps_per_s']:8.2f} steps/s {r['seqs_per_s']:10.0f} seq/s | "
            f"eval of {r['eval_examples']:,} probe examples {r['eval_s']:.2f}s"
        )


if __name__ == "__main__":
    main()
