"""The ranking shortcut of comparison and complex runs, from their config alone (tasks/ranking_shortcut.py).

    python benchmarks/ranking_shortcut.py docs/runs/complex-small/seed-*            # print per probe
    python benchmarks/ranking_shortcut.py RUN... --write    # add it to summary.json where it is missing

Runs trained since the shortcut exists carry it in summary.json (`shortcut`); this gives it to older ones.
The task's data is regenerated from the run's config.json (a pure function of it), so the numbers are those
the run would have written. `--write` only adds the missing key, atomically; it never changes a measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groklab import runs
from groklab.errors import UserError
from groklab.tasks import generate, shortcut_baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (config.json, summary.json)")
    parser.add_argument("--write", action="store_true", help="add `shortcut` to summary.json where missing")
    args = parser.parse_args(argv)
    try:
        for run_dir in args.runs:
            shortcut = shortcut_baseline(generate(runs.read_config(run_dir).data))
            print(run_dir, " ".join(f"{k} {v:.3f}" for k, v in shortcut.items()) or "(no shortcut for this task)")
            summary = runs.read_summary(run_dir)
            if args.write and shortcut and summary is not None and "shortcut" not in summary:
                runs.write_summary(run_dir, summary | {"shortcut": shortcut})
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
