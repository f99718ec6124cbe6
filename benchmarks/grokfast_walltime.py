"""Grokfast EMA wall time on x·y mod 97: the authors' own training loop against groklab's, alternated on one CPU.

    python benchmarks/grokfast_walltime.py                                  # seeds 0 1 2, one ABBA round, 1 thread
    python benchmarks/grokfast_walltime.py --json grokfast-walltime.json    # the same, results also as JSON
    python benchmarks/grokfast_walltime.py --seeds 0 1 2 3 4 --rounds 2     # more seeds: a tighter interval
    python benchmarks/grokfast_walltime.py --smoke                          # 30 steps of each, no 95% stop: code path
    python benchmarks/grokfast_walltime.py --record docs/runs/grokfast-walltime   # per-seed records: claims table

It backs the claim "groklab's Grokfast EMA run takes ×1.79 less wall time than the authors' own loop (float32)"
(docs/results.md, "Throughput and Grokfast wall time on a third CPU kind"). For each seed S the two loops run in
ABBA order (authors, ours, ours, authors; `--rounds` repeats it), both in this process, both at `--threads`,
after one untimed epoch of each (so neither pays the process's one-time costs, e.g. Adam's import of dynamo):
- authors: their `main.py --filter ema --alpha 0.98 --lamb 2 --weight_decay 0.005` (Adam lr 1e-3, betas (0.9,
  0.98), batch 512, 50% split, LambdaLR warm-up over 10 updates, a full validation pass every epoch = 10 steps),
  with `torch.manual_seed(S)`, stopped at the first epoch whose validation accuracy is ≥ 95%;
- ours: `benchmarks/grokfast.py`'s `run_one("ema", ...)` with data.seed = train.seed = S (configs/modular-p97.toml,
  evaluated on 60 log-spaced steps from step 100), stopped at the first evaluation that has fit and grokked.
"steps" is the step at which validation first read ≥ 95% (the authors' on their 10-step grid, ours on the
log grid, which overshoots the crossing by up to ~7%); "wall" the seconds from building the model to the stop,
averaged over the repeats; "ratio" authors' wall / ours. The two loops grok at different steps for the same S
(different inits and splits; both span ~830–1,640 steps over seeds), so the ratio is run time, not step time.
Summary: median, min–max and mean with a 95% Student-t interval over seeds, and the pooled ratio (total authors'
wall / total ours) that the ×1.79 is. A run that hits `--max-steps` reports that cap as a lower bound on its
steps and wall, so the ratio is marked ≥ (authors capped) or ≤ (ours capped). `--max-steps` also sets the end of
our log-spaced evaluation grid (as `grokfast.py --steps` does), so keep the default 5000 when comparing.

This VM's speed drifts by ±30% over minutes (the authors' seed 0 took 63 s and 89 s ten minutes apart), so only
ratios from alternated runs on the same machine count; never compare a wall time with one from another hour.
Keep other jobs off the cores while it runs. Timings are in-process and exclude Python and torch start-up. The
smoke run (4 × 30 steps) took 57 s on the 2-core machine under a load average of 7 (not measured idle).

The authors' code below is restated from https://github.com/ironjr/grokfast (main.py: Block, Decoder,
multiplication_mod_p_data, main; grokfast.py: gradfilter_ema; commit 93b2248e of 2024-06-26) under their MIT
License, Copyright (c) 2024 Jaerin Lee; its notice is reproduced above that code. Kept in their op order; dropped:
tqdm, printing, plotting, saving results and weights, the unused filters and flags; added: the stop at 95%.
Checked once against their unmodified main.py (seed 3, --budget 30, 1 thread): the parameters after 30 steps are
bitwise equal.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from grokfast import run_one  # benchmarks/grokfast.py: this script's folder is on sys.path

from groklab import runs
from groklab.stats import half_width_95

GROK = 0.95  # validation accuracy that counts as grokked, as in benchmarks/grokfast.py
SMOKE_STEPS = 30  # 3 of the authors' epochs
WARM_UP_STEPS = 10  # one of the authors' epochs
ORDER = ("authors", "ours", "ours", "authors")  # ABBA: a linear drift in machine speed hits both loops alike


# --- the authors' code, restated from ironjr/grokfast main.py and grokfast.py (commit 93b2248e), under: ---
#
# MIT License
#
# Copyright (c) 2024 Jaerin Lee
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.


class Block(nn.Module):
    """Causal transformer block
    """

    def __init__(self, dim, num_heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * 4),
            nn.GELU(),
            nn.Linear(dim * 4, dim),
        )

    def forward(self, x):
        attn_mask = torch.full(
            (len(x), len(x)), -float("Inf"), device=x.device, dtype=x.dtype
        )
        attn_mask = torch.triu(attn_mask, diagonal=1)
        attn_mask[torch.isnan(attn_mask)] = 0.0 # fixes all 'nan' on 'mps' device

        x = self.ln_1(x)
        a, _ = self.attn(x, x, x, attn_mask=attn_mask, need_weights=False)
        x = x + a
        m = self.mlp(self.ln_2(x))
        x = x + m
        return x


class Decoder(nn.Module):
    """Causal Transformer decoder (sequence-first: input (seq, batch) -> logits (seq, batch, num_tokens))
    """

    def __init__(self, dim=128, num_layers=2, num_heads=4, num_tokens=97, seq_len=5):
        super().__init__()
        self.token_embeddings = nn.Embedding(num_tokens, dim)
        self.position_embeddings = nn.Embedding(seq_len, dim)
        self.layers = nn.ModuleList()
        for _ in range(num_layers):
            self.layers.append(Block(dim, num_heads))

        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, x):
        h = self.token_embeddings(x)
        positions = torch.arange(x.shape[0], device=x.device).unsqueeze(-1)
        h = h + self.position_embeddings(positions).expand_as(h)
        for layer in self.layers:
            h = layer(h)

        h = self.ln_f(h)
        logits = self.head(h)
        return logits


def multiplication_mod_p_data(p, eq_token, op_token):
    """x◦y = x·y (mod p) for 0 ≤ x < p, 0 < y < p  (their docstring says x/y; the code computes x·y)
    """
    x = torch.arange(p)
    y = torch.arange(1, p)
    x, y = torch.cartesian_prod(x, y).T

    eq = torch.ones_like(x) * eq_token
    op = torch.ones_like(x) * op_token
    result = x * y % p

    return torch.stack([x, op, y, eq, result])


def gradfilter_ema(m, grads=None, alpha=0.98, lamb=2.0):
    if grads is None:
        grads = {n: p.grad.data.detach() for n, p in m.named_parameters() if p.requires_grad and p.grad is not None}

    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb

    return grads


def authors_run(seed: int, budget: int, stop: bool = True) -> dict:
    """Their main() with `--seed seed --budget budget --filter ema --alpha 0.98 --lamb 2 --weight_decay 0.005` and
    the other flags at their defaults (p 97, batch 512, Adam lr 1e-3, betas (0.9, 0.98)). One function, so that it
    reads line by line against theirs; `stop`: return after the first epoch with validation accuracy ≥ 95%."""
    torch.manual_seed(seed)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    p, batch_size = 97, 512
    eq_token = p
    op_token = p + 1

    model = Decoder(
        dim=128, num_layers=2, num_heads=4, num_tokens=p + 2, seq_len=5
    ).to(device)

    data = multiplication_mod_p_data(p, eq_token, op_token)

    train_idx, valid_idx = torch.randperm(data.shape[1]).split(data.shape[1] // 2)
    train_data, valid_data = data[:, train_idx], data[:, valid_idx]

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.005, betas=(0.9, 0.98))

    #  linear learning rate warmup over the first 10 updates
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: 1 if update > 10 else update / 10
    )

    steps_per_epoch = math.ceil(train_data.shape[1] / batch_size)

    its, train_acc, val_acc, train_loss, val_loss = [], [], [], [], []
    grads = None
    i = 0

    for _e in range(int(budget) // steps_per_epoch):

        # randomly shuffle train data
        train_data = train_data[:, torch.randperm(train_data.shape[1])]

        for data, is_train in [(train_data, True), (valid_data, False)]:

            model.train(is_train)
            total_loss = 0
            total_acc = 0

            # torch.split faster than dataloader with tensor
            dl = torch.split(data, batch_size, dim=1)
            for input in dl:
                input = input.to(device)

                with torch.set_grad_enabled(is_train):
                    logits = model(input[:-1])
                    # calculate loss only on the answer part of the equation (last element
                    loss = F.cross_entropy(logits[-1], input[-1])
                    total_loss += loss.item() * input.shape[-1]

                if is_train:
                    model.zero_grad()
                    loss.backward()
                    grads = gradfilter_ema(model, grads=grads, alpha=0.98, lamb=2.0)
                    optimizer.step()
                    scheduler.step()
                    i += 1

                acc = (logits[-1].argmax(-1) == input[-1]).float().mean()
                total_acc += acc.item() * input.shape[-1]

            if is_train:
                train_acc.append(total_acc / train_data.shape[-1])
                train_loss.append(total_loss / train_data.shape[-1])
                its.append(i)
            else:
                val_acc.append(total_acc / valid_data.shape[-1])
                val_loss.append(total_loss / valid_data.shape[-1])

        if stop and val_acc[-1] >= GROK:  # added: their loop runs the whole budget
            return {"steps": i, "reached": True, "val_acc": val_acc[-1]}
    return {"steps": i, "reached": False, "val_acc": val_acc[-1] if val_acc else None}


# --- the measurement ---


def time_authors(seed: int, budget: int, threads: int, stop: bool) -> dict:
    torch.set_num_threads(threads)
    tic = time.perf_counter()
    result = authors_run(seed, budget, stop)
    return result | {"wall_s": time.perf_counter() - tic}


def time_ours(seed: int, budget: int, threads: int, stop: bool) -> dict:
    extra = [f"train.threads={threads}"] + ([] if stop else ["train.stop_on_grok=false"])
    r = run_one("ema", budget, extra, None, seed)  # times the run itself, from building the model to the stop
    reached = stop and r["grok_step"] is not None
    return {"steps": r["grok_step"] if reached else r["final_step"], "reached": reached, "wall_s": r["wall_s"]}


LOOPS = {"authors": time_authors, "ours": time_ours}


def warm_up(threads: int) -> float:
    """One untimed epoch of each loop: the first torch.optim.Adam in a process imports torch._dynamo (seconds),
    and whichever loop ran first would pay it and every other first-call cost alone."""
    tic = time.perf_counter()
    for loop in LOOPS.values():
        loop(0, WARM_UP_STEPS, threads, False)
    return time.perf_counter() - tic


def measure(seeds: list[int], rounds: int, budget: int, threads: int, stop: bool) -> list[dict]:
    """Every timed run, in the order run: per seed and round, the loops in ABBA order."""
    records = []
    for seed in seeds:
        for rnd in range(rounds):
            for loop in ORDER:
                r = {"loop": loop, "seed": seed, "round": rnd} | LOOPS[loop](seed, budget, threads, stop)
                records.append(r)
                at = f"step {r['steps']:,}" if r["reached"] else f"{r['steps']:,} steps (not stopped at 95%)"
                print(f"  seed {seed} round {rnd} {loop:>7s}: {at}, {r['wall_s']:.1f} s", flush=True)
    return records


def per_seed(records: list[dict], stop: bool = True) -> list[dict]:
    """One row per seed: each loop's steps (those of every repeat, which should agree) and mean wall time."""
    rows = []
    for seed in dict.fromkeys(r["seed"] for r in records):
        row: dict = {"seed": seed}
        for loop in LOOPS:
            mine = [r for r in records if r["seed"] == seed and r["loop"] == loop]
            row[f"{loop}_steps"] = mine[0]["steps"]
            row[f"{loop}_steps_all"] = [r["steps"] for r in mine]
            row[f"{loop}_reached"] = all(r["reached"] for r in mine)
            row[f"{loop}_wall_s"] = statistics.fmean(r["wall_s"] for r in mine)
        row["ratio"] = row["authors_wall_s"] / row["ours_wall_s"]
        row["ratio_bound"] = bound(row["authors_reached"], row["ours_reached"]) if stop else "="  # smoke: fixed steps
        rows.append(row)
    return rows


def bound(authors_reached: bool, ours_reached: bool) -> str:
    """'=' a measured ratio; '>=' the authors' run hit the cap (their wall is a lower bound); '<=' ours did."""
    if authors_reached == ours_reached:
        return "=" if authors_reached else "?"
    return ">=" if ours_reached else "<="


def summarize(rows: list[dict]) -> dict:
    ratios = [r["ratio"] for r in rows]
    n, mean = len(ratios), statistics.fmean(ratios)
    half = half_width_95(ratios, min_values=2)
    return {
        "n_seeds": n,
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "mean": mean,
        "ci95": [mean - half, mean + half] if half is not None else None,
        "pooled": sum(r["authors_wall_s"] for r in rows) / sum(r["ours_wall_s"] for r in rows),
        "all_measured": all(r["ratio_bound"] == "=" for r in rows),
    }


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def fmt_steps(steps: int, reached: bool, stop: bool) -> str:
    return f"{steps:,}" if reached or not stop else f"≥ {steps:,}"


def report(rows: list[dict], summary: dict, stop: bool) -> None:
    print("| seed | authors' loop: steps | wall | ours: steps | wall | wall ratio (authors / ours) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mark = {"=": "", ">=": "≥ ", "<=": "≤ ", "?": "? "}[r["ratio_bound"]]
        a = fmt_steps(r["authors_steps"], r["authors_reached"], stop)
        o = fmt_steps(r["ours_steps"], r["ours_reached"], stop)
        walls = f"{r['authors_wall_s']:.1f} s | {o} | {r['ours_wall_s']:.1f} s"
        print(f"| {r['seed']} | {a} | {walls} | {mark}×{r['ratio']:.2f} |")
        for loop in LOOPS:
            if len(set(r[f"{loop}_steps_all"])) > 1:
                print(f"  note: seed {r['seed']}, {loop}: repeats stopped at different steps {r[f'{loop}_steps_all']}")
    s = summary
    ci = f", 95% t-interval ×{s['ci95'][0]:.2f}–×{s['ci95'][1]:.2f}" if s["ci95"] else ""
    print(f"ratio over {s['n_seeds']} seed(s): median ×{s['median']:.2f} (×{s['min']:.2f}–×{s['max']:.2f}), "
          f"mean ×{s['mean']:.2f}{ci}; pooled (total wall) ×{s['pooled']:.2f}")
    if not s["all_measured"]:
        print("some runs hit --max-steps: their ratios are bounds (marked), and so are the statistics")
    if not stop:
        print("smoke run: fixed steps, no 95% stop; the ratio is per-step speed only, not the claim")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, help="default 0 1 2 (--smoke: 0)")
    parser.add_argument("--rounds", type=int, default=1, help="ABBA rounds per seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both loops")
    parser.add_argument("--max-steps", type=int, default=5000, help="cap for both loops (their --budget)")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_STEPS} steps of each, no 95%% stop")
    parser.add_argument("--json", type=Path, help="also write the results here (atomically)")
    parser.add_argument("--record", type=Path, help="also write DIR/seed=S/{summary,config}.json per seed and "
                        "DIR/benchmark.json, the records `groklab claims` reads (docs/claims.toml)")
    args = parser.parse_args(argv)
    for name, least in (("rounds", 1), ("threads", 1), ("max_steps", 10)):  # 10 = one of the authors' epochs
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {least}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    stop = not args.smoke
    seeds = args.seeds or ([0] if args.smoke else [0, 1, 2])
    budget = SMOKE_STEPS if args.smoke else args.max_steps
    print(f"torch {torch.__version__}, {args.threads} thread(s), {cpu_name() or 'unknown CPU'}; seeds {seeds}, "
          f"{args.rounds} ABBA round(s), cap {budget:,} steps{' (smoke: no 95% stop)' if args.smoke else ''}")
    if not args.smoke:  # the smoke run checks the code path; its timings mean nothing anyway
        print(f"  warm-up (untimed, {WARM_UP_STEPS} steps of each): {warm_up(args.threads):.1f} s", flush=True)
    records = measure(seeds, args.rounds, budget, args.threads, stop)
    rows = per_seed(records, stop)
    summary = summarize(rows)
    report(rows, summary, stop)
    result = {
        "settings": {"seeds": seeds, "rounds": args.rounds, "threads": args.threads, "max_steps": budget,
                     "smoke": args.smoke, "order": list(ORDER), "grok": GROK,
                     "warm_up_steps": 0 if args.smoke else WARM_UP_STEPS},
        "machine": {"cpu": cpu_name(), "platform": platform.platform(), "torch": torch.__version__,
                    "git_sha": runs.git_sha()},
        "runs": records,
        "rows": rows,
        "summary": summary,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        runs.write_json(args.json, result)
    if args.record:
        record(args.record, result)
    return result


def record(folder: Path, result: dict) -> None:
    """One folder per seed, as a run's record is: summary.json (the seed's row: each loop's steps and wall, the
    ratio) and config.json (the benchmark's settings, the seed, the machine), so the claims table rebuilds its
    wall-time row from committed files (`groklab claims`); benchmark.json keeps every timed run. Atomic writes;
    a seed's older record in the folder is replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in result["rows"]:
        seed_dir = folder / f"seed={row['seed']}"
        seed_dir.mkdir(exist_ok=True)
        runs.write_json(seed_dir / "config.json", {"benchmark": "grokfast_walltime", "seed": row["seed"]}
                        | result["settings"] | {"machine": result["machine"]})
        runs.write_json(seed_dir / "summary.json", row)
    runs.write_json(folder / "benchmark.json", result)


if __name__ == "__main__":
    main()
