"""Execute the lessons and write their rendered copies, outputs and figures embedded, to docs/tutorials/:

    .venv/bin/python tutorials/render.py        # every notebook (about 10-15 min on 2 cores)
    .venv/bin/python tutorials/render.py 02     # those whose name starts with 02

Each notebook runs from a temporary copy (the .ipynb files in tutorials/ are kept without outputs, so their
diffs stay readable) and its runs go to a temporary folder. Needs the `[tutorial]` extra.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from nbconvert import HTMLExporter

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "tutorials"


def render(notebook: Path, out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / notebook.name
        shutil.copy(notebook, copy)
        nb = nbformat.read(copy, as_version=4)
        client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": tmp}})
        client.execute()
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)  # images inline as data: URIs
    out = out_dir / notebook.with_suffix(".html").name
    out.write_text(body, encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", nargs="?", default="", help="only notebooks whose name starts with this")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(HERE.glob(f"{args.prefix}*.ipynb")):
        tic = time.perf_counter()
        print(f"wrote {render(notebook, OUT)} ({time.perf_counter() - tic:.0f} s)")


if __name__ == "__main__":
    main()
