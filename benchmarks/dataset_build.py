"""Build the paper-size composition dataset and time it: generation, JSONL writing, loading back.

    python benchmarks/dataset_build.py                    # |E|=2000, |R|=200, φ=18 (724K training facts)
    python benchmarks/dataset_build.py --phi 7.2 --format paper --keep data/comp-7.2

Prints wall time and peak resident memory (resource.getrusage; the process-wide peak so far) after each
stage. Targets on the 2-core CPU machine: under 60 s and 4 GB in all. `generation_cost` (also used by
`throughput.py --scaling`) measures one generation on its own: its time, and its own peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from groklab.tasks import generate
from groklab.tasks.composition import CompositionConfig
from groklab.tasks.io import load_dataset, write_dataset


def peak_rss_gb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 30) if sys.platform == "darwin" else peak / (1 << 20)


def generation_cost(cfg: CompositionConfig) -> dict:
    """Seconds to generate the task (untraced), then the peak memory that generation itself allocates
    (tracemalloc in a second run: it sees Python and NumPy allocations, not the interpreter's baseline)."""
    tic = time.perf_counter()
    data = generate(cfg)
    seconds = time.perf_counter() - tic
    del data
    tracemalloc.start()
    try:
        data = generate(cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"generate_s": seconds, "peak_mb": peak / 2**20, "n_train": len(data.train)}


def stage(name: str, tic: float) -> float:
    now = time.perf_counter()
    print(f"{name:<10s} {now - tic:7.2f} s   peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--relations", type=int, default=200)
    parser.add_argument("--phi", type=float, default=18.0)
    parser.add_argument("--format", default="groklab", choices=["groklab", "paper"])
    parser.add_argument("--keep", type=Path, help="write here and keep the files (default: a temp folder)")
    args = parser.parse_args()

    cfg = CompositionConfig(n_entities=args.entities, n_relations=args.relations, phi=args.phi)
    start = tic = time.perf_counter()
    data = generate(cfg)
    tic = stage("generate", tic)
    print(f"           train {len(data.train):,} facts ({data.info['n_train_inferred']:,} inferred)")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "data"
        write_dataset(data, cfg.__dict__, out, fmt=args.format)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        tic = stage("write", tic)
        print(f"           {size / 1e6:.0f} MB in {out}")
        load_dataset(out)
        stage("load", tic)
    print(f"{'total':<10s} {time.perf_counter() - start:7.2f} s   peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
