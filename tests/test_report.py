"""Reports: from fixture run and sweep directories (written here, no training) to one HTML page and PNGs."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from groklab import config, runs
from groklab.cli import main
from groklab.figures.across_runs import accuracy_metrics
from groklab.report import table
from groklab.results import RunResult, collect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_STARTED = {"name": "s", "keys": ["data.phi"], "grid": {"data.phi": [9]}, "fixed": {}, "base": "demo.toml",
               "runs": [{"name": "phi=9", "dir": "phi=9", "overrides": {"data.phi": 9}}]}


def fake_run(run_dir, phi, seed, grok_at, steps=8000, finished=True):
    """A composition run directory as the trainer leaves it: train fits at step grok_at/3 and test_id groks at
    grok_at (None: never); unfinished runs stop logging at steps/2 and have no summary.json."""
    cfg = config.load("demo", [f"data.phi={phi}", f"train.seed={seed}", f"train.steps={steps}"])
    run_dir.mkdir(parents=True)
    runs.write_json(run_dir / "config.json", cfg.to_dict())
    last = steps if finished else steps // 2
    logged = [0] + [round(10 ** (k / 10)) for k in range(1, 50) if 10 ** (k / 10) < last] + [last]
    rows = []
    for step in logged:
        fit = 1 / (1 + math.exp(-(step - (grok_at or 6000) / 3) / 200))
        test = 0.02 if grok_at is None else 1 / (1 + math.exp(-(step - grok_at * 0.9) / (grok_at * 0.05)))
        rows.append({"step": step, "epoch": step / 50, "train_inferred/acc": fit, "test_inferred_id/acc": test,
                     "test_inferred_ood/acc": 0.01, "id_atomic/acc": fit, "elapsed_s": step / 20})
    runs.rewrite_metrics(run_dir, rows)
    if finished:
        found = runs.load_run(run_dir).stats()  # detected from the metrics, as the trainer's summary would be
        runs.write_json(run_dir / "summary.json", found | {"final_step": last, "steps_per_epoch": 50})


@pytest.fixture
def sweep_dir(tmp_path):
    """phi × seed: phi 3.6 never groks (one seed unfinished), higher phi groks sooner."""
    root = tmp_path / "phi"
    grid = {"data.phi": [3.6, 7.2, 12.6], "train.seed": [0, 1]}
    points = []
    for phi, grok in ((3.6, None), (7.2, 5000), (12.6, 2000)):
        for seed in (0, 1):
            name = f"phi={phi:g},seed={seed}"
            fake_run(root / name, phi, seed, grok and grok + 300 * seed, finished=not (phi == 3.6 and seed == 1))
            points.append({"name": name, "dir": name, "overrides": {"data.phi": phi, "train.seed": seed}})
    runs.write_json(root / "sweep.json", {"name": "phi", "description": "a φ sweep", "base": "demo.toml",
                                          "fixed": {}, "grid": grid, "keys": list(grid), "runs": points})
    return root


def test_report_of_a_sweep(sweep_dir, capsys):
    assert main(["report", str(sweep_dir)]) == 0
    out = sweep_dir / "report"
    page = (out / "index.html").read_text()
    for name in ("phi=3.6,seed=0", "phi=7.2,seed=1", "phi=12.6,seed=0"):
        assert name in page  # every run is named (table and captions)
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"grok-vs-data.phi.png", "accuracy-vs-data.phi.png",
                                      "accuracy-phi=12.6,seed=1.png"}
    assert len([p for p in pngs if p.name.startswith("accuracy-phi")]) == 6  # one curve figure per run
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, png
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 8  # self-contained: every figure (6 runs, grok and accuracy vs φ) is in the page
    assert not list(out.glob(".*"))  # no temp files left behind
    assert "never grokked" in page and "unfinished" in page
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out


def test_table_reports_grok_delay_and_the_runs_that_never_grokked(sweep_dir):
    results, keys, sweeps, missing = collect([sweep_dir])
    assert keys == ["data.phi", "train.seed"] and sweeps[0]["name"] == "phi" and missing == []
    header, rows = table(results, keys)
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_name["phi=3.6,seed=0"]["state"] == "never grokked"
    assert by_name["phi=3.6,seed=0"]["grok step"] == "—"
    assert by_name["phi=3.6,seed=1"]["state"] == "unfinished"  # no summary.json: detected from its metrics
    grokked = by_name["phi=12.6,seed=0"]
    assert grokked["state"] == "grokked" and grokked["phi"] == "12.6"
    result = next(r for r in results if r.name == "phi=12.6,seed=0")
    fit, grok = result.stats["fit_step"], result.stats["grok_step"]
    memorised = result.stats["train_reaches_grok_level_step"]  # the delay runs from train at the grok level
    assert 0 < memorised <= fit < grok and grokked["delay (steps)"] == f"{grok - memorised:,}"
    assert float(grokked["delay (epochs)"]) == pytest.approx((grok - memorised) / 50, abs=0.05)


def test_delay_is_memorise_to_grok_even_when_a_training_probe_is_memorised_after_the_grok(tmp_path):
    """Fit waits for every training probe; when the OOD atomic facts are memorised last (after the grok),
    grok − fit is negative, but the report's delay (train at the grok level → grok) is not. A summary written
    before delay_epochs existed gets it from the logged epochs."""
    fake_run(tmp_path / "r", 12.6, 0, 3000)
    rows = runs.read_metrics(tmp_path / "r")
    for row in rows:
        row["ood_atomic/acc"] = 1.0 if row["step"] >= 5000 else 0.5
    runs.rewrite_metrics(tmp_path / "r", rows)
    (tmp_path / "r" / "summary.json").unlink()
    stats = runs.load_run(tmp_path / "r").stats()
    assert stats["fit_step"] > stats["grok_step"]  # every fact memorised only after the grok
    steps, epochs = RunResult.of(runs.load_run(tmp_path / "r")).delay()
    assert steps == stats["grok_step"] - stats["train_reaches_grok_level_step"] > 0
    assert epochs == pytest.approx(steps / 50)
    old = {k: v for k, v in stats.items() if k != "delay_epochs"}
    runs.write_json(tmp_path / "r" / "summary.json", old | {"final_step": 8000})
    assert RunResult.of(runs.load_run(tmp_path / "r")).delay() == (steps, pytest.approx(epochs))


def test_report_of_loose_runs_finds_the_keys_that_differ(tmp_path):
    fake_run(tmp_path / "a", 9.0, 0, 3000)
    fake_run(tmp_path / "b", 18.0, 0, 1500)
    results, keys, _, _ = collect([tmp_path / "a", tmp_path / "b"])
    assert keys == ["data.phi"] and [r.name for r in results] == ["a", "b"]
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "grok-vs-data.phi.png").read_bytes().startswith(PNG_MAGIC)


def test_report_of_one_run(tmp_path):
    fake_run(tmp_path / "run", 12.6, 0, 2000)
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "run" in page and "Accuracy curves" in page and "grok-vs" not in page


def test_report_of_a_run_that_just_started(tmp_path):
    """config.json written, nothing logged yet (a live sweep): reported as unfinished, not an error."""
    fake_run(tmp_path / "run", 9.0, 0, 3000, finished=False)
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    results, _, _, _ = collect([tmp_path / "run"])
    assert results[0].state == "unfinished" and results[0].stats["grok_step"] is None
    assert main(["report", str(tmp_path / "run")]) == 0


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.mkdir(), "neither a run directory"),
        (lambda p: None, "neither a run directory"),
        (lambda p: (p.mkdir(), runs.write_json(p / "sweep.json", NOT_STARTED)), "nothing to report"),
    ],
)
def test_report_bad_input_is_one_line(tmp_path, capsys, make, needle):
    make(tmp_path / "x")
    assert main(["report", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


def test_several_dirs_need_out(tmp_path, capsys):
    fake_run(tmp_path / "a", 9.0, 0, 3000)
    fake_run(tmp_path / "b", 9.0, 1, 3000)
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "--out" in capsys.readouterr().err



def test_accuracy_metrics_read_the_grok_probe_and_the_linear_rule_rate(sweep_dir):
    results, *_ = collect([sweep_dir])
    named = dict(accuracy_metrics(results))
    assert "final linear-rule rate" not in named  # composition runs log no linear rule
    best = named["best grok-probe acc"]
    assert all(best(r) >= r.final_acc("test_id") for r in results)  # the best is at least the last
    run = results[0]
    run.stats["roles"] = run.stats["roles"] | {"grok": "test_inferred_ood"}  # a sequence task names its gen probe
    for i, row in enumerate(run.rows):
        row["test_inferred_ood/linear"] = i / len(run.rows)
    named = dict(accuracy_metrics(results))
    assert named["best grok-probe acc"](run) == 0.01  # read from the grok probe, not test_id
    assert named["final linear-rule rate"](run) == (len(run.rows) - 1) / len(run.rows)


def test_tree_projection_figure_only_for_analysed_runs(sweep_dir, tmp_path):
    from groklab.figures.across_runs import tree_figure

    results, *_ = collect([sweep_dir])
    assert tree_figure(results, "data.phi", tmp_path / "none.png") is None  # nothing analysed: no empty figure
    for r in results[:3]:
        checkpoints = [{"step": s, "t_score": s / 1000, "parse_f1": 0.5} for s in (10, 100, 1000)]
        (r.run_dir / "analysis").mkdir()
        runs.write_json(r.run_dir / "analysis" / "tree-projection-gen.json", {"checkpoints": checkpoints})
    png = tree_figure(results, "data.phi", tmp_path / "tree.png")
    assert png is not None and png.read_bytes().startswith(PNG_MAGIC)
    assert main(["report", str(sweep_dir)]) == 0
    assert (sweep_dir / "report" / "tree-projection-vs-data.phi.png").is_file()


BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# headless and offline: no sandbox (CI runs as root), no GPU, no network of any kind (the notebooks' pages name
# scripts on a CDN: refused at once instead of waited for), a fresh profile per call
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars")
# appended to a copy of a page: once it has loaded, how many of its images the browser decoded
COUNT_IMAGES = ("<script>addEventListener('load', () => { const i = [...document.images], p = "
                "document.createElement('pre'); p.id = 'groklab-check'; p.textContent = JSON.stringify({images: "
                "i.length, decoded: i.filter(x => x.complete && x.naturalWidth > 0).length, text: "
                "document.body.innerText.length}); document.body.append(p); });</script>")
TUTORIAL_PAGES = sorted((Path(__file__).resolve().parents[1] / "docs" / "tutorials").glob("*.html"))


@pytest.fixture
def browser(tmp_path):
    """Run headless Chromium on a page with these arguments; its stdout. Skipped where none is installed, unless
    GROKLAB_REQUIRE_BROWSER is set (.ci/run sets it, after installing Debian's chromium): there it fails."""
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        if os.environ.get("GROKLAB_REQUIRE_BROWSER"):
            pytest.fail("GROKLAB_REQUIRE_BROWSER is set but no chromium is installed: apt-get install chromium")
        pytest.skip("no headless Chromium on this machine (apt-get install chromium; .ci/run installs it)")
    profiles = iter(range(1000))

    def run(page: Path, *args: str) -> str:
        profile = tmp_path / f"chromium-profile-{next(profiles)}"
        done = subprocess.run([found, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                              check=True, capture_output=True, text=True, timeout=120)
        return done.stdout

    return run


def screenshot(browser, page: Path, out: Path, width: int = 1400, height: int = 3000) -> np.ndarray:
    """The page as a browser paints it, RGB in [0, 1]."""
    from matplotlib.image import imread

    browser(page, f"--window-size={width},{height}", f"--screenshot={out}")
    return imread(out)[..., :3]


def decoded_images(browser, page: Path, tmp_path: Path) -> dict:
    """{images, decoded, text}: the page's images, those the browser could decode, and its visible characters."""
    copy = tmp_path / f"checked-{page.name}"
    copy.write_text(page.read_text(encoding="utf-8") + COUNT_IMAGES, encoding="utf-8")
    dom = browser(copy, "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'<pre id="groklab-check">([^<]*)</pre>', dom)
    assert found, f"{page.name}: the page never finished loading in the browser"
    return json.loads(found.group(1))


def assert_report_painted(pixels: np.ndarray) -> None:
    """The table at the top and the embedded figures below are painted."""
    ink = (pixels < 0.9).any(-1)  # not white
    colour = pixels.max(-1) - pixels.min(-1) > 0.2  # the figures' coloured curves, not only black text
    assert ink[:400].mean() > 0.01, "no title, sweep line or table at the top of the page"
    assert colour[400:].mean() > 0.002, "no figure drawn below the table"


def test_report_renders_in_a_headless_browser(sweep_dir, tmp_path, browser):
    """The page as a browser draws it: the table at the top and the embedded figures below are painted, and
    every image decodes."""
    assert main(["report", str(sweep_dir)]) == 0
    page = sweep_dir / "report" / "index.html"
    pixels = screenshot(browser, page, tmp_path / "page.png")
    assert pixels.shape[:2] == (3000, 1400)
    assert_report_painted(pixels)
    seen = decoded_images(browser, page, tmp_path)
    assert seen["images"] == page.read_text().count("<img") >= 3 and seen["decoded"] == seen["images"]

    # the check can fail: the same page with its figures' bytes broken paints the table and no figure
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAA", page.read_text()))
    with pytest.raises(AssertionError, match="no figure drawn"):
        assert_report_painted(screenshot(browser, broken, tmp_path / "broken.png"))
    assert decoded_images(browser, broken, tmp_path)["decoded"] == 0


@pytest.mark.parametrize("page", TUTORIAL_PAGES, ids=lambda p: p.stem)
def test_the_rendered_lessons_show_every_figure_in_a_browser(page, tmp_path, browser):
    """docs/tutorials/ as a reader opens it, offline: the text is there and every figure decodes."""
    seen = decoded_images(browser, page, tmp_path)
    assert seen["text"] > 5000, f"{page.name}: {seen['text']} characters of visible text"
    assert seen["images"] >= 2 and seen["decoded"] == seen["images"], f"{page.name}: {seen}"
    pixels = screenshot(browser, page, tmp_path / "lesson.png", height=1200)
    assert (pixels < 0.9).any(-1).mean() > 0.01, f"{page.name}: the top of the page is blank"


def test_accuracy_curves_draw_the_atomic_probes_and_mark_the_grok_probe():
    from groklab.figures import plt
    from groklab.figures.accuracy import draw_roles

    roles = {"train": "train_inferred", "test_id": "test_inferred_id", "test_ood": "test_inferred_ood",
             "grok": "test_inferred_ood", "atomic_id": "id_atomic", "atomic_ood": "ood_atomic"}
    rows = [{"step": s, **{f"{p}/acc": s / 100 for p in set(roles.values())}} for s in (1, 10, 100)]
    fig, ax = plt.subplots()
    draw_roles(ax, rows, roles)
    lines = {line.get_label(): line for line in ax.get_lines()}
    plt.close(fig)
    assert {"atomic (ID): id_atomic", "atomic (OOD): ood_atomic"} <= set(lines)
    assert lines["atomic (OOD): ood_atomic"].get_linestyle() == "--"
    assert "test (OOD): test_inferred_ood (grok probe)" in lines  # the probe with two roles is drawn once
    assert len(lines) == 5


def test_loose_runs_saved_before_a_field_existed_do_not_look_swept_on_it(tmp_path):
    for seed in (0, 1):
        fake_run(tmp_path / f"s{seed}", 9, seed, 2000)
    old = runs.read_json(tmp_path / "s0" / "config.json")
    del old["train"]["grad_transform"]  # a field added since: read at its default
    runs.write_json(tmp_path / "s0" / "config.json", old)
    _, keys, _, _ = collect([tmp_path / "s0", tmp_path / "s1"])
    assert keys == ["train.seed"]


def test_the_mean_across_seeds_carries_its_95_percent_t_interval():
    from groklab.figures.across_runs import mean_and_half_width

    assert mean_and_half_width([1.0, 2.0, 3.0]) == pytest.approx((2.0, 4.3027 / math.sqrt(3)), rel=1e-4)
    assert mean_and_half_width([1.0, 3.0]) == (2.0, 0.0)  # fewer than 3 runs: no interval drawn


def test_the_table_reads_test_accuracy_against_the_prior_and_the_shortcut(sweep_dir):
    run = sweep_dir / "phi=12.6,seed=0"
    summary = runs.read_json(run / "summary.json")
    levels = {"no_information": {"test_inferred_id": 0.25, "test_inferred_ood": 0.5},
              "shortcut": {"test_inferred_id": 0.875}}
    runs.write_json(run / "summary.json", summary | levels)
    results, keys, _, _ = collect([sweep_dir])
    header, rows = table(results, keys)
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_name["phi=12.6,seed=0"]["baselines"] == "test_id: prior 0.250, shortcut 0.875; test_ood: prior 0.500"
    assert by_name["phi=7.2,seed=0"]["baselines"] == "—"  # a summary without them (written before they existed)
