"""The one atomic writer: every file of a run, a checkpoint, a dataset or a report is written to a temp file or
folder beside its place and renamed into it, so a reader (a report on a live sweep, a resume after kill -9) sees
the old file or the new one, never half of one. `groklab.runs` re-exports these as the run directory's writer;
this module stands below it so that the dataset folders of `groklab.tasks.io` use the same writer.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_sibling(path: Path) -> Path:
    """A temp name beside `path`: the same folder (so the rename is atomic), a leading dot (never taken for a
    run file), the process id (two writers never share one) and `path`'s own name last (matplotlib picks the
    image format from the suffix)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Write to the yielded temp file; on success one rename puts it at `path`, so a reader (a report on a live
    sweep, a resume after kill -9) sees the old file or the new one, never half of one. A write that fails
    (disk full) leaves no temp file."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_figure(fig: Any, path: Path, dpi: float) -> Path:
    """A matplotlib figure, in the format of `path`'s suffix (PNG); the caller closes the figure."""
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


@contextmanager
def atomic_dir(final: Path, replace: bool = False) -> Iterator[Path]:
    """Fill the yielded temp folder; on success it is renamed to `final`, so `final` is whole or absent (a
    checkpoint, an export, a dataset). `replace`: an existing `final` is swapped out (renamed aside, the new
    folder renamed in, then the old one deleted), so the old one stays whole until the new one is in place (a
    checkpoint saved again, a dataset regenerated); otherwise `final` must be absent or empty: never delete what
    someone else put there. Leftovers of a crash are dot-folders named like `temp_sibling`'s."""
    tmp = temp_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    old = temp_sibling(final.with_name(f"{final.name}.old"))
    try:
        yield tmp
        if replace and final.exists():
            os.replace(final, old)
        elif final.exists():
            final.rmdir()
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
