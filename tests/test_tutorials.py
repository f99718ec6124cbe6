"""The lessons in tutorials/ run top to bottom, and their assertion cells hold: a change that stops a notebook
from showing grokking (or breaks the API it uses) fails here. Each notebook runs on a temporary copy, its runs
in a temporary folder, so nothing in the repository changes. Needs the `[tutorial]` extra (`make venv`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(p.name for p in TUTORIALS.glob("[0-9]*.ipynb"))
CELL_TIMEOUT = 1200  # s: the demo run alone is 1-3 min on 2 idle cores, several times that on a busy machine


def test_every_lesson_has_its_paired_script():
    """Each .ipynb has the jupytext .py it is edited through, with the same cells (sources and kinds): edit
    the .py, then `jupytext --sync tutorials/*.py` (or edit in Jupyter, which writes both)."""
    jupytext = pytest.importorskip("jupytext", reason="the [tutorial] extra: pip install -e '.[tutorial]'")
    assert NOTEBOOKS, "no notebooks in tutorials/"
    for name in NOTEBOOKS:
        script = TUTORIALS / name.replace(".ipynb", ".py")
        assert script.is_file(), f"{name} has no paired {script.name}"
        from_py = jupytext.read(script)
        from_nb = jupytext.read(TUTORIALS / name)
        cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
        assert cells(from_py) == cells(from_nb), f"{name} and {script.name} differ: run jupytext --sync {script}"


def test_answers_are_folded_away():
    """Exercise answers are collapsed in Jupyter (source_hidden) and in the rendered HTML (<details>)."""
    nbformat = pytest.importorskip("nbformat", reason="the [tutorial] extra: pip install -e '.[tutorial]'")
    nb = nbformat.read(TUTORIALS / "01-grokking-in-ten-minutes.ipynb", as_version=4)
    answers = [c for c in nb.cells if "<summary>Answer</summary>" in c.source]
    assert len(answers) >= 3
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in answers)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch, request):
    """Execute every cell in a fresh kernel; any error, a failed assertion cell included, fails the test.
    Notebook 01 reads the session's `groklab demo` run (conftest.py; test_demo.py checks the same run) through
    its GROKLAB_DEMO_RUN setting, as a user who ran `make demo` would, instead of training it a second time;
    everything after that cell runs for real."""
    nbclient = pytest.importorskip("nbclient", reason="the [tutorial] extra: pip install -e '.[tutorial]'")
    import nbformat

    copy = tmp_path / name
    shutil.copy(TUTORIALS / name, copy)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the lesson's runs (tempfile.mkdtemp) land here
    if name.startswith("01-"):
        monkeypatch.setenv("GROKLAB_DEMO_RUN", str(request.getfixturevalue("demo_run")[0]))
    nb = nbformat.read(copy, as_version=4)
    tic = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    print(f"{name}: {time.perf_counter() - tic:.0f} s")
    assert list(tmp_path.glob("groklab-lesson-*")), "the lesson's runs went to its temporary folder"
