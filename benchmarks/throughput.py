"""Training and evaluation throughput of the real trainer, its MFU, and a reference-style Hugging Face pipeline.

    python benchmarks/throughput.py                           # demo and a d_model=128 variant, with reference
    python benchmarks/throughput.py --steps 300 --threads 2 --json out.json
    python benchmarks/throughput.py --skip-reference --set model.n_layers=8
    python benchmarks/throughput.py --scaling --skip-reference # step time vs d_model, n_layers, batch, |E|
    python benchmarks/throughput.py --profile --skip-reference

Prints, on whatever device is present:
1. the matrix-multiply peak: best-of-5 fp32 GEMM (2048³ on a CPU, 8192³ on a GPU), and bf16 where the
   device has fast bf16 kernels (`groklab.train.cpu_has_fast_bf16()` on a CPU; always on a GPU);
2. our training step (`train.start` + timed `Trainer.update()` after warm-up): steps/s, sequences/s, model
   FLOP/s and MFU = achieved FLOP/s / GEMM peak of the step's matmul dtype (fp32 on a CPU by default, bf16
   under autocast). FLOPs are counted in `flops.py`: forward = 2·(params used per token)·tokens for every
   matmul actually computed (the last layer only partly: `Block.forward_answer`), attention 2·2·T²·d_model
   per layer per sequence over the full T×T grid (not halved for causality), unembedding 2·d_model·d_vocab
   per scored position; backward = 2 × forward. "dense" is the same count for the plain forward (every
   layer and the logits at all positions), printed beside it;
3. the reference-style pipeline (`reference_pipeline.py`: GPT-2 with the task's tokens added to its 50,257
   tokens, DataLoader, full-vocabulary loss, AdamW, evaluation by `generate`) and the same model with the
   task's own vocabulary ("own-vocab HF"), their training steps/s and evaluation time of all probes against
   our `trainer.evaluate`;
4. the ratios, next to the targets (TARGETS) and the anchors measured on the 2-core CPU machine (ANCHORS).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import reference_pipeline as ref
import torch
from dataset_build import generation_cost
from flops import gemm_peaks, step_flops, sync

from groklab import config, train
from groklab.errors import UserError
from groklab.tasks import SEQUENCE_TASKS

TARGETS = {"train_vs_reference": 30.0, "train_vs_own_vocab": 2.0, "eval_vs_reference": 20.0, "mfu_d128": 0.60}
# Measured on the 2-core (AVX2-class) CPU machine: steps/s by (n_layers, d_model), GEMM peak in GFLOP/s.
ANCHORS = {
    "reference HF": {(4, 64): 0.93, (4, 128): 0.71},
    "own-vocab HF": {(4, 64): 21.0, (2, 128): 16.0},
    "gemm_gflops": {"fp32": 233.0, "bf16": 967.0},
}
SCALING = {
    "model.d_model": [64, 128, 256],
    "model.n_layers": [2, 4, 8],
    "train.batch_size": [128, 512, 2048],
    "data.n_entities": [100, 200, 400, 800],
}
DATA_SCALING = {"n_entities": [100, 200, 400, 800], "phi": [3.6, 7.2, 12.6, 18.0]}
WARMUP = 5


@contextmanager
def started(cfg: config.RunConfig) -> Iterator[train.Trainer]:
    """A fresh trainer for `cfg` in a temporary run folder."""
    with tempfile.TemporaryDirectory() as tmp:
        yield train.start(cfg, Path(tmp) / "run", progress=False)


def seconds_per_update(trainer: train.Trainer, steps: int) -> float:
    for _ in range(WARMUP):
        trainer.update()
    sync(trainer.device)
    tic = time.perf_counter()
    for _ in range(steps):
        trainer.update()
    sync(trainer.device)
    return (time.perf_counter() - tic) / steps


def eval_seconds(trainer: train.Trainer, repeats: int = 3) -> float:
    """Best of `repeats` evaluations of every probe, after one warm-up."""
    times = []
    for _ in range(repeats + 1):
        tic = time.perf_counter()
        trainer.evaluate(trainer.model, trainer.autocast)
        sync(trainer.device)
        times.append(time.perf_counter() - tic)
    return min(times[1:])


def peak_of(trainer: train.Trainer, peaks: dict[str, float]) -> tuple[str, float]:
    """The GEMM peak of the step's matmul dtype: bf16 under autocast, else fp32."""
    dtype = "bf16" if isinstance(trainer.autocast, torch.autocast) and "bf16" in peaks else "fp32"
    return dtype, peaks[dtype]


def flop_row(cfg: config.RunConfig, d_vocab: int, n_pos: int, step_s: float, peak: float, answer_only: bool) -> dict:
    """Throughput and FLOP numbers of one pipeline's step; `answer_only` selects how our model computes."""
    batch = cfg.train.batch_size
    computed = step_flops(cfg.model, d_vocab, n_pos, batch, answer_only)
    dense = step_flops(cfg.model, d_vocab, n_pos, batch, answer_only=False)
    return {
        "step_ms": 1e3 * step_s,
        "steps_per_s": 1 / step_s,
        "seqs_per_s": batch / step_s,
        "gflop_per_step": computed / 1e9,
        "dense_gflop_per_step": dense / 1e9,
        "gflops": computed / step_s / 1e9,
        "mfu": computed / step_s / peak,
        "dense_mfu": dense / step_s / peak,
    }


def measure_ours(trainer: train.Trainer, steps: int, peaks: dict[str, float]) -> dict:
    dtype, peak = peak_of(trainer, peaks)
    step_s = seconds_per_update(trainer, steps)
    answer_only = not trainer.data.train.is_sequence  # sequence tasks train a language model on every position
    row = flop_row(trainer.cfg, len(trainer.data.vocab), trainer.data.n_ctx, step_s, peak, answer_only=answer_only)
    return row | {"pipeline": "ours", "peak_dtype": dtype, "eval_s": eval_seconds(trainer)}


def measure_hf(trainer: train.Trainer, steps: int, peaks: dict[str, float], offset: int) -> dict:
    """The reference-style pipeline (offset = GPT-2's vocabulary) or own-vocab HF (offset 0)."""
    d_vocab, n_pos = offset + len(trainer.data.vocab), trainer.data.n_ctx + 1  # the answer is in the sequence
    model = ref.gpt2(trainer.cfg.model, len(trainer.data.vocab), n_pos, trainer.device, offset)
    steps_per_s = ref.train_steps_per_s(model, trainer.train_split, trainer.cfg.train, trainer.autocast, steps)
    eval_s, _ = ref.eval_seconds(model, trainer.evaluate.all, trainer.evaluate.batch_size, trainer.autocast)
    row = flop_row(trainer.cfg, d_vocab, n_pos, 1 / steps_per_s, peak_of(trainer, peaks)[1], answer_only=False)
    return row | {"pipeline": "reference HF" if offset else "own-vocab HF", "eval_s": eval_s}


def measure_config(cfg: config.RunConfig, args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    """Ours, then (unless --skip-reference) the reference and own-vocab HF pipelines, on one config."""
    with started(cfg) as trainer:
        rows = [measure_ours(trainer, args.steps, peaks)]
        if not args.skip_reference:
            rows += [measure_hf(trainer, args.reference_steps, peaks, off) for off in (ref.GPT2_VOCAB, 0)]
        n_params = sum(p.numel() for p in trainer.model.parameters())
        n_probes = len(trainer.evaluate.all)
    shape = (cfg.model.depth, cfg.model.d_model)
    return {"label": f"{shape[0]}×{shape[1]}", "shape": shape, "params": n_params, "probes": n_probes, "rows": rows}


def print_peaks(peaks: dict[str, float]) -> None:
    for dtype, flops in peaks.items():
        anchor = ANCHORS["gemm_gflops"].get(dtype)
        print(f"GEMM peak {dtype}: {flops / 1e9:9.1f} GFLOP/s   (2-core anchor machine: {anchor:g})")


HEADER = (
    f"{'config':<8s} {'pipeline':<13s} {'steps/s':>8s} {'seq/s':>9s} {'ms/step':>8s} {'GFLOP/step':>10s} "
    f"{'dense':>7s} {'GFLOP/s':>8s} {'MFU':>6s} {'dense MFU':>9s} {'eval s':>7s} {'anchor':>7s}"
)


def print_config(result: dict) -> None:
    for row in result["rows"]:
        anchor = ANCHORS.get(row["pipeline"], {}).get(result["shape"])
        print(
            f"{result['label']:<8s} {row['pipeline']:<13s} {row['steps_per_s']:8.2f} {row['seqs_per_s']:9.0f} "
            f"{row['step_ms']:8.2f} {row['gflop_per_step']:10.3f} {row['dense_gflop_per_step']:7.3f} "
            f"{row['gflops']:8.1f} {row['mfu']:6.1%} {row['dense_mfu']:9.1%} {row['eval_s']:7.3f} "
            f"{'' if anchor is None else f'{anchor:g}':>7s}"
        )


def ratios(result: dict) -> dict[str, float]:
    by = {row["pipeline"]: row for row in result["rows"]}
    ours = by["ours"]
    out = {"mfu": ours["mfu"]}
    if "reference HF" in by:
        out["train_vs_reference"] = ours["steps_per_s"] / by["reference HF"]["steps_per_s"]
        out["train_vs_own_vocab"] = ours["steps_per_s"] / by["own-vocab HF"]["steps_per_s"]
        out["eval_vs_reference"] = by["reference HF"]["eval_s"] / ours["eval_s"]
    return out


def print_targets(main: dict, wide: dict) -> None:
    """Each target beside its measured value: training and eval ratios at the main config, MFU at d≥128."""
    measured = ratios(main) | {"mfu_d128": ratios(wide)["mfu"], "mfu_main": ratios(main)["mfu"]}
    lines = [
        ("train_vs_reference", f"ours / reference HF training steps/s ({main['label']})", "×"),
        ("train_vs_own_vocab", f"ours / own-vocab HF training steps/s ({main['label']})", "×"),
        ("eval_vs_reference", f"reference HF / ours evaluation time, all probes ({main['label']})", "×"),
        ("mfu_d128", f"MFU at d_model ≥ 128 ({wide['label']})", "%"),
        ("mfu_main", f"MFU at {main['label']} (no target)", "%"),
    ]
    for key, text, unit in lines:
        if key not in measured:
            continue
        value, target = measured[key], TARGETS.get(key)
        shown = f"{value:.1%}" if unit == "%" else f"{value:.1f}×"
        goal = "" if target is None else (f"≥ {target:.0%}" if unit == "%" else f"≥ {target:g}×")
        verdict = "" if target is None else ("met" if value >= target else "NOT met")
        print(f"  {text:<62s} {shown:>8s}   target {goal:<7s} {verdict}")


def scaling_rows(base: list[str], args: argparse.Namespace, peaks: dict[str, float]) -> list[dict]:
    """Step time as one setting grows, the others at the main config's values."""
    rows = []
    data_cfg = config.load(args.config, base).data
    for key, values in SCALING.items():
        if key.startswith("data.") and not hasattr(data_cfg, key.removeprefix("data.")):
            continue  # e.g. |E| of a task without entities
        for value in values:
            cfg = config.load(args.config, [*base, f"{key}={value}"])
            with started(cfg) as trainer:
                row = measure_ours(trainer, args.steps, peaks)
            rows.append({"config": f"{key}={value}"} | row)
            print(f"  {key}={value:<{23 - len(key)}} {row['step_ms']:9.2f} {row['steps_per_s']:9.1f} {row['mfu']:7.1%}")
    return rows


def data_scaling_rows(cfg: config.RunConfig) -> list[dict]:
    """Dataset generation time and peak memory as |E| and φ grow (composition tasks only)."""
    if not hasattr(cfg.data, "phi"):
        print("  (dataset scaling needs a composition config)")
        return []
    rows = []
    for key, values in DATA_SCALING.items():
        for value in values:
            cost = generation_cost(dataclasses.replace(cfg.data, **{key: value}))
            rows.append({"config": f"data.{key}={value}"} | cost)
            print(f"  {rows[-1]['config']:<24s} {cost['generate_s']:9.3f} {cost['peak_mb']:9.1f} {cost['n_train']:9,}")
    return rows


def run_scaling(base: list[str], args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    print(f"\nscaling from {args.config} {' '.join(base)} ({args.steps} timed steps each)")
    print(f"  {'config':<24s} {'step ms':>9s} {'steps/s':>9s} {'MFU':>7s}")
    steps = scaling_rows(base, args, peaks)
    print(f"  {'dataset':<24s} {'gen s':>9s} {'peak MB':>9s} {'train':>9s}")
    return {"steps": steps, "data": data_scaling_rows(config.load(args.config, base))}


def profile_step(cfg: config.RunConfig, steps: int = 5) -> None:
    """Top ops by self CPU time over a few training steps (after warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    with started(cfg) as trainer:
        seconds_per_update(trainer, 1)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(steps):
                trainer.update()
            sync(trainer.device)
    print(f"\nprofile of {steps} training steps, top ops by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def run_configs(cfg: config.RunConfig, base: list[str], args: argparse.Namespace, peaks: dict) -> list[dict]:
    """The main config and (if narrower) its d_model=128 variant: table, then ratios against the targets."""
    variants = [base] + ([[*base, "model.d_model=128"]] if cfg.model.d_model < 128 else [])
    print(f"\n{HEADER}")
    results = []
    for overrides in variants:
        results.append(measure_config(config.load(args.config, overrides), args, peaks))
        print_config(results[-1])
    print(f"\n(torch.get_num_threads() = {torch.get_num_threads()}; {results[0]['probes']:,} probe examples)")
    print_targets(results[0], results[-1])
    for r in results:
        r["ratios"] = ratios(r)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo", help="preset name or TOML file (default: demo)")
    parser.add_argument("--steps", type=int, default=200, help="timed training updates of ours (default 200)")
    parser.add_argument("--reference-steps", type=int, default=10, help="timed steps of each HF pipeline")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the config's train.threads or all)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the Hugging Face pipelines")
    parser.add_argument("--scaling", action="store_true", help="step time vs d_model, n_layers, batch, |E|")
    parser.add_argument("--profile", action="store_true", help="torch.profiler breakdown of a training step")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every number to this JSON file")
    return parser.parse_args()


def main() -> None:
    try:
        run(parse_args())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> None:
    for name in ("steps", "reference_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)} must be >= 1")
    cfg = config.load(args.config, args.set)
    if cfg.data.task in SEQUENCE_TASKS and not (args.skip_reference or args.scaling):
        raise UserError(f"the reference pipelines score one answer token; {cfg.data.task} is a sequence task: "
                        "add --skip-reference")
    if not (args.skip_reference or args.scaling):
        ref.import_gpt2()  # fail now, with the install command, rather than after timing ours
    threads = args.threads or cfg.train.threads or os.cpu_count() or 1
    base = [*args.set, f"train.threads={threads}"]
    torch.set_num_threads(threads)
    device = train.pick_device(cfg.train.device)
    print(f"torch {torch.__version__} on {device} ({torch.backends.cpu.get_cpu_capability()}), {threads} threads")
    peaks = gemm_peaks(device, train.cpu_has_fast_bf16())
    print_peaks(peaks)
    out: dict = {"device": str(device), "threads": threads, "torch": torch.__version__, "peaks": peaks}
    out["targets"] = TARGETS
    if args.scaling:
        out["scaling"] = run_scaling(base, args, peaks)
    else:
        out["configs"] = run_configs(cfg, base, args, peaks)
    if args.profile:
        profile_step(config.load(args.config, base))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
