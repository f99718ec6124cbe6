"""`groklab` command line.

    groklab data composition --out data/comp --set phi=9          # write a dataset (JSONL + manifest)
    groklab data composition --out data/paper --format paper      # the paper's own file format
    groklab train demo --set model.n_layers=2 --out runs/mine      # train from a preset or TOML file
    groklab train configs/composition-paper.toml --data data/paper # train on a dataset folder
    groklab train --resume runs/mine                               # continue exactly where it stopped
    groklab demo                                                   # the small composition run that groks
    groklab export runs/mine --format hf --out exports/mine        # Hugging Face GPT-2 folder (+ TL)
    groklab sweep phi-cpu --jobs 2                                 # a grid of runs, idempotent (sweeps/)
    groklab report runs/phi-cpu                                    # HTML page + PNGs of runs or sweeps

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

    parser = _Parser(prog="groklab", description="Make small transformers grok, and see why.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="generate a task's dataset into a folder")
    data.add_argument("task", help="composition | comparison | complex | modular")
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
    train.add_argument("config", nargs="?", help="TOML file or preset name (see configs/)")
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

    report = sub.add_parser("report", help="an HTML page with figures and a table from run or sweep folders")
    report.add_argument("dirs", nargs="+", type=Path, metavar="RUN_OR_SWEEP_DIR")
    report.add_argument("--out", type=Path, help="output folder (default DIR/report for one directory)")

    claims = sub.add_parser("claims", help="rebuild the claims table of docs/results.md from the runs in docs/runs/")
    claims.add_argument("--docs", type=Path, default=Path("docs"), help="folder with claims.toml, runs/, results.md")
    claims.add_argument("--check", action="store_true", help="exit 2 if the table differs from what the runs give")
    return parser


def cmd_data(args: argparse.Namespace) -> None:
    from groklab import config
    from groklab.tasks import generate
    from groklab.tasks.io import write_dataset

    overrides = [s if s.startswith("data.") else f"data.{s}" for s in args.set]
    raw = config.apply_overrides({"data": {"task": args.task}}, overrides)
    cfg = config.from_dict(raw)
    tic = time.perf_counter()
    data = generate(cfg.data)
    write_dataset(data, cfg.to_dict()["data"], args.out, fmt=args.format)
    counts = ", ".join([f"training set {len(data.train):,}"] + [f"{k} {len(v):,}" for k, v in data.probes.items()])
    print(
        f"wrote {args.task} ({args.format} format) to {args.out} "
        f"in {time.perf_counter() - tic:.1f}s: {counts}"
    )


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{Path(name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args: argparse.Namespace) -> dict:
    from groklab import config, train

    if args.resume:
        if args.config or args.set or args.data or args.out:
            raise UserError("--resume RUN_DIR takes no config, --set, --data or --out: the run keeps its own")
        trainer = train.resume(args.resume, progress=not args.quiet)
    else:
        if not args.config:
            raise UserError("give a config (a TOML file or preset name such as `demo`) or --resume RUN_DIR")
        cfg = config.load(args.config, args.set)
        run_dir = args.out or default_run_dir(args.config)
        trainer = train.start(cfg, run_dir, args.data, progress=not args.quiet)
    print(f"run directory: {trainer.run_dir}")
    summary = trainer.run()
    finish_report(trainer.run_dir, summary)
    return summary


def finish_report(run_dir: Path, summary: dict) -> None:
    """Print the grokking table and draw the accuracy figure."""
    from groklab.figures.accuracy import run_accuracy_figure

    png = run_accuracy_figure(run_dir, summary)
    print(format_summary(summary))
    print(f"figure: {png}")


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
    baseline = summary.get("no_information", {})
    for name, acc in summary["final"].items():
        prior = f"   (no-information {baseline[name]:.3f})" if name in baseline and "inferred" in name else ""
        lines.append(f"{'final accuracy ' + name:34s} {acc:.3f}{prior}")
    groups = summary.get("final_groups", {})
    for probe in dict.fromkeys(k.split("/")[0] for k in groups):
        parts = [f"{k.split('/acc_')[1]} {v:.2f}" for k, v in groups.items() if k.startswith(probe + "/")]
        lines.append(f"{'  ' + probe + ' by group':34s} {'  '.join(parts)}")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> None:
    from groklab.analysis.over_checkpoints import analyze

    if args.examples < 1:
        raise UserError(f"--examples {args.examples} must be >= 1")
    out = analyze(args.run_dir, args.method, args.split, args.examples, progress=not args.quiet)
    figures = sorted(out.parent.glob(f"{out.stem}*.png"))
    print(f"wrote {out} and {', '.join(str(f) for f in figures)}")


def cmd_export(args: argparse.Namespace) -> None:
    from groklab.export import export_hf

    out = export_hf(args.run_dir, args.out, args.step)
    print(f"wrote {out}: load it with GPT2LMHeadModel.from_pretrained or TransformerBridge.boot_transformers")


def cmd_sweep(args: argparse.Namespace) -> list[dict]:
    from groklab import report, runs, sweep, sweep_file
    from groklab.results import load_run

    spec = sweep_file.load(args.sweep)
    out = args.out or Path("runs") / spec.name
    results = sweep.run(spec, out, args.jobs, args.backend, args.address)
    started = [r["name"] for r in results if runs.is_run(out / r["name"])]
    print(report.format_table(*report.table([load_run(out / n, n) for n in started], spec.keys)))
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


def cmd_report(args: argparse.Namespace) -> None:
    from groklab.report import write

    print(f"wrote {write(args.dirs, args.out)}")


def cmd_claims(args: argparse.Namespace) -> None:
    from groklab.claims import rebuild

    print(rebuild(args.docs, check=args.check))


def cmd_demo(args: argparse.Namespace) -> dict:
    args.config, args.data, args.resume, args.quiet = "demo", None, None, False
    args.out = args.out or default_run_dir("demo")
    return cmd_train(args)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "data": cmd_data,
            "train": cmd_train,
            "demo": cmd_demo,
            "analyze": cmd_analyze,
            "export": cmd_export,
            "sweep": cmd_sweep,
            "report": cmd_report,
            "claims": cmd_claims,
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
        print("interrupted: resume with `groklab train --resume RUN_DIR`", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
