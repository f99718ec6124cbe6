"""Sweeps: grid expansion and names, one-line validation errors, idempotence and resume, presets, and Ray
landing runs exactly where the local backend does."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from groklab import checkpoint, config, results, runs, sweep, sweep_file
from groklab.cli import main
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
# TINY minus the seed/phi keys the tests sweep, as a [fixed] table
FIXED = "\n".join(f'"{k}" = {v}' for k, _, v in (item.partition("=") for item in TINY) if k != "data.phi")


def write_sweep(tmp_path: Path, grid: str, fixed: str = FIXED, head: str = 'base = "demo"', name="s") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"{head}\n[fixed]\n{fixed}\n[grid]\n{grid}\n")
    return path


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def metrics_without_time(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]


# --- expansion ----------------------------------------------------------------------------------------------
def test_grid_expands_in_product_order_with_readable_names(tmp_path):
    path = write_sweep(tmp_path, '"data.phi" = [3.6, 9, 12.6]\ntrain.seed = [0, 1]\n"filter.kind" = ["none"]')
    spec = sweep_file.load(str(path))
    points = sweep_file.expand(spec)
    assert [p.name for p in points] == [
        f"phi={phi},seed={seed},kind=none" for phi in ("3.6", "9", "12.6") for seed in (0, 1)
    ]
    first = points[0].config
    assert first.data.phi == 3.6 and first.train.seed == 0 and first.filter.kind == "none"
    assert points[2].config.data.phi == 9.0 and isinstance(points[2].config.data.phi, float)
    for p in points:  # fixed overrides reach every run; the base preset fills the rest
        assert p.config.model.n_layers == 2 and p.config.train.steps == 60 and p.config.data.n_entities == 40
        assert p.config.train.weight_decay == config.load("demo").train.weight_decay  # from demo.toml


def test_a_committed_run_can_be_a_sweeps_base(tmp_path):
    """`base` may name a run folder: its config.json is the base, so a recorded run's seeds can be swept."""
    run = tmp_path / "recorded"
    run.mkdir()
    original = config.load("demo", ["data.n_entities=70", "model.d_model=48"])
    (run / "config.json").write_text(json.dumps(original.to_dict()))
    path = write_sweep(tmp_path, "train.seed = [3, 4]", fixed="", head=f'base = "{run.name}"')
    points = sweep_file.expand(sweep_file.load(str(path)))
    assert [p.name for p in points] == ["seed=3", "seed=4"]
    for p, seed in zip(points, (3, 4), strict=True):
        assert p.config.train.seed == seed and p.config.data.n_entities == 70 and p.config.model.d_model == 48


def test_names_disambiguate_keys_and_format_values():
    assert runs.run_name({"data.seed": 1, "train.seed": 2}) == "data.seed=1,train.seed=2"
    assert runs.run_name({"train.lr": 1e-4, "train.betas": [0.9, 0.98], "model.tie_embeddings": True}) == (
        "lr=0.0001,betas=0.9_0.98,tie_embeddings=true"
    )
    assert runs.format_value(0.1 + 0.2) == "0.30000000000000004"  # exact, never a silent collision


def test_nested_tables_mean_the_same_as_dotted_keys(tmp_path):
    a = write_sweep(tmp_path, '"model.dropout" = [0, 0.1]', name="a")
    b = write_sweep(tmp_path, "[grid.model]\ndropout = [0, 0.1]", name="b")
    assert sweep_file.load(str(a)).grid == sweep_file.load(str(b)).grid == {"model.dropout": [0, 0.1]}


@pytest.mark.parametrize(
    ("grid", "fixed", "head", "needle"),
    [
        ('"model.n_layer" = [1, 2]', FIXED, None, "unknown key model.n_layer; valid keys in [model]: activation"),
        ('"data.bogus" = [1]', FIXED, None, "valid keys in [data]"),
        ('"phi" = [1]', FIXED, None, "must be section.name"),
        ('"optim.lr" = [1]', FIXED, None, "must be section.name"),
        ("", FIXED, None, "[grid] is empty"),
        ('"data.phi" = []', FIXED, None, "non-empty list"),
        ('"data.phi" = 9', FIXED, None, "non-empty list"),
        ('"data.phi" = [9, 9]', FIXED, None, "lists a value twice"),
        ('"filter.window" = [10, 0]', FIXED, None, "run window=0: filter.window=0 must be >= 1"),
        ('"data.phi" = [9, 30]', FIXED, None, "run phi=30: data.phi=30.0 is infeasible"),
        ('"train.lr" = ["fast"]', FIXED, None, "run lr=fast: train.lr='fast' must be of type float"),
        ('"train.steps" = [10]', FIXED, None, "both in [fixed] and in [grid]"),
        ('"data.phi" = [9]', '"train.stepz" = 1', None, "[fixed] unknown key train.stepz"),
        ('"data.phi" = [9]', FIXED, 'base = "nope"', "config 'nope' not found"),
        ('"data.phi" = [9]', FIXED, "", "needs base ="),
        ('"data.phi" = [9]', FIXED, 'base = "demo"\nbogus = 1', "unknown key bogus; valid keys at a sweep"),
        ('"data.phi" = [9]\n[resources]\ncpu = 1', FIXED, None, "key resources.cpu; valid keys in [resources]: cpus"),
        ('"data.phi" = [9]\n[resources]\ngpus = -1', FIXED, None, "gpus=-1 must be a number >= 0"),
        ('"data.phi" = [9]\n[analyze]\nmethods = ["lens"]', FIXED, None, "methods='lens' is not one of logit-lens"),
        ('"data.phi" = [9]\n[analyze]\nexamples = 0', FIXED, None, "examples = 0 must be an integer >= 1"),
        ('"data.phi" = [9]\n[analyze]\nmethod = []', FIXED, None, "analyze.method; valid keys in [analyze]: ex"),
        ('"data.phi" = [9]\n[analyze]\nmethods = ["tree-projection"]', FIXED, None,
         "[analyze] tree-projection does not apply to data.task='composition'"),
    ],
)
def test_bad_sweep_file_is_one_clear_line(tmp_path, capsys, grid, fixed, head, needle):
    path = write_sweep(tmp_path, grid, fixed, 'base = "demo"' if head is None else head)
    code, _, err = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "out").exists()  # validated before anything is written or trained


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sweep", "no-such-sweep"], "sweep 'no-such-sweep' not found; give a TOML file or a sweep preset: "),
        (["sweep", "phi-cpu", "--jobs", "0"], "--jobs 0 must be >= 1"),
        (["sweep", "phi-cpu", "--address", "auto"], "--address is for --backend ray"),
        (["sweep", "phi-cpu", "--backend", "spark"], "invalid choice"),
    ],
)
def test_bad_sweep_arguments(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_ray_missing_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    path = write_sweep(tmp_path, '"data.phi" = [9]')
    code, _, err = run_cli(["sweep", path, "--backend", "ray", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "pip install 'groklab[ray]'" in err and not (tmp_path / "out").exists()


def test_presets_resolve_and_expand():
    """Every shipped sweep builds valid configs; the φ sweeps use the paper's φ values (science.md §1)."""
    assert (REPO / "sweeps").resolve() == sweep_file.SWEEP_DIR.resolve()
    names = sorted(p.stem for p in sweep_file.SWEEP_DIR.glob("*.toml"))
    for kind in ("phi", "entities", "depth", "weight-decay", "sharing", "comparison"):
        assert {f"{kind}-cpu", f"{kind}-gpu"} <= set(names)
    for name in names:
        points = sweep_file.expand(sweep_file.load(name))
        assert points and len({p.name for p in points}) == len(points), name
        if name.startswith("phi-"):
            assert list(dict.fromkeys(p.config.data.phi for p in points)) == [3.6, 5.4, 7.2, 9.0, 12.6, 18.0]
        if name.endswith("-cpu"):
            assert all(p.config.model.d_model <= 128 for p in points), name
        else:
            assert sweep_file.load(name).resources.gpus >= 1, name


def test_guide_sweep_example_is_valid(tmp_path):
    text = (REPO / "docs" / "guide.md").read_text()
    block = re.search(r"## Sweeps, reports and recorded results.*?```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "example.toml").write_text(block)
    spec = sweep_file.load(str(tmp_path / "example.toml"))
    assert [p.name for p in sweep_file.expand(spec)][0] == "phi=3.6,seed=0"
    assert spec.grid == sweep_file.load("phi-cpu").grid


def test_threads_never_oversubscribe_the_cores():
    cores = sweep.available_cores()
    assert sweep.threads_per_job("local", 1, sweep_file.Resources()) == cores
    assert sweep.threads_per_job("local", 2, sweep_file.Resources()) == max(1, cores // 2)
    assert sweep.threads_per_job("local", 4 * cores, sweep_file.Resources()) == 1
    assert sweep.threads_per_job("ray", 8, sweep_file.Resources(cpus=3.5)) == 3


# --- running: idempotent, resumable ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny two-run sweep trained once; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("trained")
    path = write_sweep(root, "train.seed = [0, 1]")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["sweep", str(path), "--out", str(root / "sw")])
    assert code == 0
    return path, root / "sw", text.getvalue()


def copy_of(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained[1], tmp_path / "sw"))


def test_sweep_trains_every_point_and_writes_a_manifest(trained):
    _, out, text = trained
    assert text.count("  done: ") == 2 and "seed=0" in text and "grok step" in text  # status lines + table
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["keys"] == ["train.seed"] and [r["dir"] for r in manifest["runs"]] == ["seed=0", "seed=1"]
    assert manifest["runs"][1]["overrides"] == {"train.seed": 1}
    for name in ("seed=0", "seed=1"):
        assert (out / name / "summary.json").is_file() and (out / name / "accuracy.png").stat().st_size > 1000
        assert json.loads((out / name / "config.json").read_text())["train"]["threads"] == 1  # from TINY


def test_a_second_sweep_file_into_the_same_folder_keeps_the_first_ones_runs(trained, tmp_path, capsys):
    """One seed of a preset per sweep file (to run in chunks) used to leave sweep.json describing the last
    file only, so a report of the folder saw one seed."""
    out = copy_of(trained, tmp_path)
    one_seed = write_sweep(tmp_path, "train.seed = [1]", name="one-seed")
    code, text, _ = run_cli(["sweep", one_seed, "--out", out], capsys)
    assert code == 0 and "sweep.json keeps 1 runs of an earlier sweep" in text and "seed=1  skipped" in text
    manifest = json.loads((out / "sweep.json").read_text())
    assert sorted(r["dir"] for r in manifest["runs"]) == ["seed=0", "seed=1"]
    assert manifest["grid"] == {"train.seed": [1, 0]} and manifest["merged_from"] == [str(trained[0].resolve())]
    found, keys, _, missing = results.collect([out])  # what `groklab report` reads
    assert sorted(r.name for r in found) == ["seed=0", "seed=1"] and keys == ["train.seed"] and not missing

    shutil.rmtree(out / "seed=0")  # a run that is gone is not carried along
    code, text, _ = run_cli(["sweep", one_seed, "--out", out], capsys)
    assert code == 0 and "keeps" not in text
    assert [r["dir"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == ["seed=1"]


def test_sweep_is_idempotent_and_resumes_an_interrupted_run(trained, tmp_path, capsys):
    path, out = trained[0], copy_of(trained, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "sweep.json"}
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert code == 0 and text.count("skipped") == 2 and "done" not in text
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "sweep.json"}

    # interrupt seed=1 after its middle checkpoint: later checkpoints and the final summary never happened
    cut = out / "seed=1"
    full = metrics_without_time(cut)
    steps = checkpoint.list_steps(cut)
    keep = steps[len(steps) // 2]
    for step in steps[len(steps) // 2 + 1 :]:
        shutil.rmtree(checkpoint.step_dir(cut, step))
    (cut / "summary.json").unlink()
    assert sweep.state(cut) == "interrupted" and sweep.state(out / "seed=0") == "finished"
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert code == 0 and "seed=0  skipped" in text and f"seed=1  resumed from step {keep}, done" in text
    assert metrics_without_time(cut) == full  # resumed exactly like the uninterrupted run
    assert (cut / "summary.json").is_file()


def test_adding_an_analysis_to_a_finished_sweep_analyses_without_retraining(trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    path = tmp_path / "with-analysis.toml"
    path.write_text(trained[0].read_text() + '[analyze]\nmethods = ["logit-lens"]\nexamples = 20\n')
    metrics = {name: (out / name / "metrics.jsonl").read_bytes() for name in ("seed=0", "seed=1")}
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert code == 0 and text.count("analysed: logit-lens") == 2, text
    for name, before in metrics.items():
        assert (out / name / "metrics.jsonl").read_bytes() == before  # not retrained
        lens = json.loads((out / name / "analysis" / "logit-lens-test_inferred_id.json").read_text())
        assert lens["examples"] == 20 and len(lens["checkpoints"]) == len(checkpoint.list_steps(out / name))
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert text.count("skipped") == 2  # analysed runs are finished
    path.write_text(path.read_text().replace("examples = 20", "examples = 25"))
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert text.count("analysed: logit-lens") == 2  # another example count: analysed again
    shutil.rmtree(checkpoint.step_dir(out / "seed=0", checkpoint.list_steps(out / "seed=0")[0]))
    code, text, _ = run_cli(["sweep", path, "--out", out], capsys)
    assert text.count("analysed: logit-lens") == 1  # seed=0's analysis no longer covers its checkpoints


def test_a_config_field_added_since_at_its_default_is_no_difference(trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    saved = json.loads((out / "seed=0" / "config.json").read_text())
    del saved["train"]["warmup_from_zero"]  # as written before the field existed
    (out / "seed=0" / "config.json").write_text(json.dumps(saved))
    code, text, _ = run_cli(["sweep", trained[0], "--out", out], capsys)
    assert code == 0 and text.count("skipped") == 2


def test_summary_older_than_the_newest_checkpoint_is_not_final(trained, tmp_path):
    out = copy_of(trained, tmp_path)
    summary = runs.read_json(out / "seed=0" / "summary.json")
    runs.write_json(out / "seed=0" / "summary.json", summary | {"final_step": 30})
    assert sweep.state(out / "seed=0") == "interrupted"


def test_edited_sweep_never_reuses_a_run_with_another_config(trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    edited = write_sweep(tmp_path, "train.seed = [0]", FIXED.replace('"train.steps" = 60', '"train.steps" = 70'))
    code, _, err = run_cli(["sweep", edited, "--out", out], capsys)
    assert code == 2 and "holds a run with train.steps=60, but the sweep now asks for 70" in err
    (out / "kind=ma").mkdir()
    (out / "kind=ma" / "notes.txt").write_text("not a run")
    code, _, err = run_cli(["sweep", write_sweep(tmp_path, '"filter.kind" = ["ma"]'), "--out", out], capsys)
    assert code == 2 and "kind=ma exists but holds no run" in err
    assert not (out / "kind=ma" / "config.json").exists()


# --- backends -------------------------------------------------------------------------------------------------
def ray_module():
    """Ray is a declared extra that `make test` installs: in CI its absence is a failure, not a skip."""
    if os.environ.get("CI"):
        return importlib.import_module("ray")
    return pytest.importorskip("ray")


def test_unreachable_ray_address_fails_fast(tmp_path, capsys):
    ray_module()
    path = write_sweep(tmp_path, '"data.phi" = [9]')
    code, _, err = run_cli(["sweep", path, "--backend", "ray", "--address", "127.0.0.1:1", "--out", tmp_path / "o"],
                           capsys)
    assert code == 2 and "nothing answers at Ray address 127.0.0.1:1" in err and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_local_processes_and_ray_land_the_same_runs(tmp_path, capsys):
    """Two runs through two local worker processes, then through a local Ray instance: same folders, same
    configs, same metrics (training is deterministic), so either backend's sweep can be resumed by the other."""
    ray = ray_module()
    path = write_sweep(tmp_path, "train.seed = [0, 1]")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    code, text, err = run_cli(["sweep", path, "--jobs", "2", "--out", local], capsys)
    assert code == 0 and text.count("  done: ") == 2, err
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code, text, err = run_cli(["sweep", path, "--backend", "ray", "--out", on_ray], capsys)
        assert ray.is_initialized()  # the backend leaves a connection it did not make alone
    finally:
        ray.shutdown()
    assert code == 0 and text.count("  done: ") == 2, err

    def layout(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("."))

    assert layout(local) == layout(on_ray)
    for name in ("seed=0", "seed=1"):
        a, b = local / name, on_ray / name
        assert (a / "config.json").read_text() == (b / "config.json").read_text()
        assert metrics_without_time(a) == metrics_without_time(b)
    code, text, _ = run_cli(["sweep", path, "--jobs", "2", "--out", on_ray], capsys)
    assert code == 0 and text.count("skipped") == 2
