"""The LLM-baseline table and figure of docs/llm-baseline.md, from recorded evaluations only (never asks a model):
each cell's `llm-eval.json` under docs/runs/llm-baseline/ and the grokked runs' summary.json under docs/runs/.

    python -m groklab.llm.table docs/runs/llm-baseline --figure docs/figures/llm-parametric.png

Cells measured in parts (seed 0 and seed 1 of a knowledge base) are pooled by adding their counts. Intervals are
Wilson 95% intervals over queries (binomial: each query right or wrong).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

Z95 = 1.959964
# what the answer needs, in facts: the x axis of the parametric vs non-parametric figure
NEEDS = {"atomic": 1, "two-hop": 2, "comparison": 2}
# cell name prefix -> (task shape, split label, context)
CELLS = {
    "comp-atomic-rag": ("atomic", "composition atomic (ID)", "retrieve"),
    "comp-atomic-none": ("atomic", "composition atomic (ID)", "none"),
    "comp-id-rag": ("two-hop", "composition two-hop ID", "retrieve"),
    "comp-id-none": ("two-hop", "composition two-hop ID", "none"),
    "comp-ood-rag": ("two-hop", "composition two-hop OOD", "retrieve"),
    "cmp-id-rag": ("comparison", "comparison ID", "retrieve"),
    "cmp-id-none": ("comparison", "comparison ID", "none"),
    "cmp-ood-rag": ("comparison", "comparison OOD", "retrieve"),
}
# the grokked side: (recorded runs, probe) per split label; counts are accuracy x probe size, pooled over runs
GROKKED = {
    "composition atomic (ID)": (["demo-regime/seed-0"], "id_atomic"),
    "composition two-hop ID": (["demo-regime/seed-0", "demo-regime/seed-1"], "test_inferred_id"),
    "composition two-hop OOD": (["demo-regime/seed-0", "demo-regime/seed-1"], "test_inferred_ood"),
    "comparison ID": (["comparison-seeds-cpu/seed=0"], "test_inferred_id"),
    "comparison OOD": (["comparison-seeds-cpu/seed=0"], "test_inferred_ood"),
}


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, Z95**2
    mid, half = (p + z2 / (2 * n)) / (1 + z2 / n), Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def load_cells(root: Path) -> dict[str, dict]:
    """Cell name -> pooled counts (strict and lenient), tokens and wall time, from root/<cell>[-sN]/llm-eval.json."""
    cells: dict[str, dict] = {}
    for path in sorted(root.glob("*/llm-eval.json")):
        name = path.parent.name
        base = name.rsplit("-s", 1)[0] if name.rsplit("-s", 1)[-1].isdigit() else name
        for e in json.loads(path.read_text())["evaluations"]:
            c = cells.setdefault(base, {"n": 0, "strict": 0, "lenient": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "seconds": 0.0, "model": e["model"], "shots": e.get("shots"), "k": e["k"],
                                        "parts": []})
            c["n"] += e["n"]
            c["strict"] += e["correct"]
            c["lenient"] += e["lenient"]["correct"]
            c["prompt_tokens"] += e["tokens"]["prompt"] or 0
            c["completion_tokens"] += e["tokens"]["completion"] or 0
            c["seconds"] += e["elapsed_s"]
            c["parts"].append(name)
    return cells


def grokked(runs_dir: Path, label: str) -> dict | None:
    if label not in GROKKED:
        return None
    names, probe = GROKKED[label]
    k = n = 0
    for name in names:
        summary = json.loads((runs_dir / name / "summary.json").read_text())
        size = probe_size(runs_dir / name, probe)
        k += round(summary["final"][probe] * size)
        n += size
    return {"k": k, "n": n, "runs": names, "probe": probe}


def probe_size(run: Path, probe: str) -> int:
    """How many queries the probe held: the data regenerated from the run's recorded config (seeded, cheap)."""
    from groklab import config
    from groklab.tasks import generate

    cfg = config.from_dict(json.loads((run / "config.json").read_text()))
    return len(generate(cfg.data).probes[probe])


def fmt(k: int, n: int) -> str:
    """Accuracy, its Wilson 95% interval and the counts."""
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}] ({k}/{n})"


def wall_seconds(root: Path, part: str, replayed_s: float) -> float:
    """The cell's wall time: wall.json beside its llm-eval.json when the cell was stopped early and scored from
    its answer cache (llm-eval's own elapsed_s is then the replay's), else llm-eval's elapsed_s."""
    path = root / part / "wall.json"
    return json.loads(path.read_text())["wall_s"] if path.is_file() else replayed_s


def table(root: Path, runs_dir: Path) -> tuple[str, list[dict], dict[str, dict]]:
    """The markdown table (per split: the grokked model, then each measured LLM cell), the LLM rows, and the
    grokked counts per split label."""
    cells = load_cells(root)
    for c in cells.values():
        c["seconds"] = sum(wall_seconds(root, part, 0.0) for part in c["parts"]) or c["seconds"]
    lines = ["| split | model | facts in the prompt | n | strict | lenient | prompt + reply tokens | wall s |",
             "|---|---|---|---:|---|---|---:|---:|"]
    rows, grok = [], {}
    labels = list(dict.fromkeys([*GROKKED, *(label for _, label, _ in CELLS.values())]))
    for label in labels:
        g = grokked(runs_dir, label)
        if g:
            grok[label] = g
            runs_named = ", ".join(f"docs/runs/{r}" for r in g["runs"])
            lines.append(f"| {label} | groklab transformer ({runs_named}) | none: its weights | {g['n']} | "
                         f"{fmt(g['k'], g['n'])} | — | — | — |")
        for name, (shape, cell_label, context) in CELLS.items():
            if cell_label != label or name not in cells:
                continue
            c = cells[name]
            setting = f"BM25 top {c['k']}" if context == "retrieve" else "none (closed book)"
            lines.append(f"| {label} | SmolLM2-135M, {c['shots']}-shot | {setting} | {c['n']} | "
                         f"{fmt(c['strict'], c['n'])} | {fmt(c['lenient'], c['n'])} | "
                         f"{c['prompt_tokens']:,} + {c['completion_tokens']:,} | {c['seconds']:,.0f} |")
            rows.append({"cell": name, "shape": shape, "label": label, "context": context, **c})
    return "\n".join(lines), rows, grok


def figure(rows: list[dict], grok: dict[str, dict], out: Path) -> None:
    """Accuracy (Wilson 95%) against the facts an answer needs, ID test queries, per memory: parametric (the
    grokked model), non-parametric (the LLM with retrieval, lenient reading), none (the LLM closed-book)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from groklab import runs

    shapes = list(NEEDS)
    shape_of = {label: shape for shape, label, _ in CELLS.values()}
    series: dict[str, list[tuple[int, int, int]]] = {
        "groklab transformer (parametric)": [(shapes.index(shape_of[lab]), g["k"], g["n"]) for lab, g in grok.items()
                                             if "OOD" not in lab],
        "SmolLM2-135M + BM25 facts (non-parametric)": [],
        "SmolLM2-135M closed book": [],
    }
    for r in rows:
        if "OOD" not in r["label"]:
            key = "SmolLM2-135M + BM25 facts (non-parametric)" if r["context"] == "retrieve" else \
                "SmolLM2-135M closed book"
            series[key].append((shapes.index(r["shape"]), r["lenient"], r["n"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for j, (label, points) in enumerate(series.items()):
        if not points:
            continue
        xs = [x + (j - 1) * 0.12 for x, _, _ in points]
        ys = [k / n for _, k, n in points]
        los = [k / n - wilson(k, n)[0] for _, k, n in points]
        his = [wilson(k, n)[1] - k / n for _, k, n in points]
        sizes = ", ".join(str(n) for *_, n in points)
        ax.errorbar(xs, ys, yerr=[los, his], fmt="o", capsize=3, label=f"{label} (n {sizes})")
    ax.set_xticks(range(len(shapes)), [f"{s}\n({NEEDS[s]} fact{'s' * (NEEDS[s] > 1)})" for s in shapes])
    ax.set_xlim(-0.5, len(shapes) - 0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy on ID test queries")
    ax.set_title("Facts an answer needs vs where they are kept")
    ax.legend(fontsize=7, loc="center left")
    fig.tight_layout()
    runs.write_figure(fig, out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="docs/runs/llm-baseline")
    parser.add_argument("--runs", type=Path, default=Path("docs/runs"), help="recorded grokked runs")
    parser.add_argument("--figure", type=Path, help="write the figure here (PNG)")
    args = parser.parse_args()
    text, rows, grok = table(args.root, args.runs)
    print(text)
    if args.figure:
        figure(rows, grok, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
