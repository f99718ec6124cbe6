"""Replay a run from one of its checkpoints and record the loss and gradient norm of every update.

    python benchmarks/loss_spike_trace.py RUN --from 37396 --out trace.json   # to the end of the schedule
    python benchmarks/loss_spike_trace.py RUN --from 37396 --to 40212 --out trace.json

metrics.jsonl holds the loss averaged between two evaluations, which are log-spaced and far apart late in a
long run; a collapse between them (sharing-cpu seed 4, shared blocks: every probe at chance at 50,000, fine at
46,498) shows only as a mean. Resuming is bit-exact, so replaying from a checkpoint repeats the run's own updates:
this prints the step where the loss first jumps (> 100× the median loss before it) and the largest gradient norm
(after the Grokfast filter, before clipping: what the trainer's divergence guard reads). It reads the run and
writes only --out (the run folder is locked while replaying, as a resume would lock it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from groklab import runs
from groklab.errors import UserError


def replay(run_dir: Path, start: int, stop: int | None = None) -> list[dict]:
    """Every update from checkpoint `start` to `stop` (default: the schedule's end) as {step, loss, grad_norm}."""
    from groklab.train import Trainer

    saved = runs.list_steps(run_dir)
    if start not in saved:
        have = ", ".join(str(s) for s in saved) or "none"
        raise UserError(f"{run_dir} has no checkpoint at step {start}; it has: {have}")
    steps = runs.read_config(run_dir).train.steps
    stop = steps if stop is None else stop
    if not start < stop <= steps:  # checked before the data is built and the run locked
        raise UserError(f"--to {stop} must be after --from {start} and at most the run's {steps} steps")
    cfg, data = runs.open_run(run_dir)
    trainer = Trainer(cfg, run_dir, data, progress=False)
    trainer.restore(start)
    trace = []
    while trainer.step < stop:
        before = float(trainer.loss_sum)
        trainer.grad_norm_max.zero_()
        trainer.update()
        trace.append({"step": trainer.step, "loss": float(trainer.loss_sum) - before,
                      "grad_norm": float(trainer.grad_norm_max)})
    return trace


def first_jump(trace: list[dict], factor: float = 100.0) -> dict | None:
    """The first update whose loss exceeds `factor` × the median loss of the updates before it (≥ 20 of them)."""
    for i in range(20, len(trace)):
        if trace[i]["loss"] > factor * statistics.median(r["loss"] for r in trace[:i]):
            return trace[i]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with checkpoints (ckpt/)")
    parser.add_argument("--from", dest="start", type=int, required=True, help="a checkpoint step to start from")
    parser.add_argument("--to", dest="stop", type=int, help="last step to replay (default: the schedule's end)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the per-update trace")
    args = parser.parse_args(argv)
    try:
        trace = replay(args.run, args.start, args.stop)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps({"run": str(args.run), "from": args.start, "updates": trace}))
    tmp.replace(args.out)
    peak = max(trace, key=lambda r: r["grad_norm"])
    jump = first_jump(trace)
    print(f"{len(trace)} updates; largest gradient norm {peak['grad_norm']:.3g} at step {peak['step']:,} "
          f"(loss {peak['loss']:.3g})")
    print("no loss jump" if jump is None else f"first loss jump at step {jump['step']:,}: loss {jump['loss']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
