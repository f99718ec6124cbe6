"""Does a long run grow in memory? Trains with an evaluation at most steps and many checkpoints and prints the
process's resident memory (RSS) along the way.

    python benchmarks/memory.py                      # demo config, 3,000 steps, ~1,000 evals, ~300 checkpoints
    python benchmarks/memory.py --set train.steps=20000
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from groklab import config, runs, train


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_during_run(cfg: config.RunConfig, run_dir: Path) -> list[tuple[int, float]]:
    """(step, RSS in MiB) after every evaluation of a run trained in this process."""
    samples: list[tuple[int, float]] = []
    append = runs.append_metrics

    def recording(run_dir: Path, row: dict) -> None:
        append(run_dir, row)
        samples.append((row["step"], rss_mb()))

    runs.append_metrics = recording
    try:
        train.start(cfg, run_dir, progress=False).run()
    finally:
        runs.append_metrics = append
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = [
        "train.steps=3000",
        "train.eval_points=1000",
        "train.ckpt_points=300",
        "train.stop_on_grok=false",
    ] + args.set
    cfg = config.load("demo", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        samples = rss_during_run(cfg, Path(tmp) / "run")
        n_ckpt = len(runs.list_steps(Path(tmp) / "run"))
    print(f"{len(samples)} evaluations, {n_ckpt} checkpoints, {cfg.train.steps:,} steps")
    for frac in (0.05, 0.25, 0.5, 0.75, 1.0):
        step, mb = samples[max(0, round(frac * len(samples)) - 1)]
        print(f"  after eval {round(frac * len(samples)):5d} (step {step:6,}): RSS {mb:7.1f} MiB")
    later = [mb for _, mb in samples[len(samples) // 10 :]]
    print(f"growth from 10% of the evaluations to the end: {later[-1] - later[0]:+.1f} MiB (max {max(later):.1f})")


if __name__ == "__main__":
    main()
