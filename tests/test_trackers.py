"""Mirrors of metrics.jsonl (groklab/trackers.py): TensorBoard's event files and W&B's offline run, read back,
hold exactly metrics.jsonl's steps and values, and a run that stops (an exception, a kill between a mirror's
write and the ledger, kill -9) and resumes writes no step twice. W&B never goes online here."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from groklab import checkpoint, runs, trackers, train
from groklab.cli import main
from groklab.errors import UserError
from tests.conftest import TINY

TENSORBOARD = "train.tensorboard=true"
WANDB = 'train.wandb="offline"'


class Killed(BaseException):
    """Stands for the process dying: nothing in the trainer catches it."""


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """W&B offline, quiet, and every folder it might use inside tmp_path; no API key in sight."""
    pytest.importorskip("wandb")
    home = tmp_path / "wandb-home"
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return home


# --- reading the mirrors back ---------------------------------------------------------------------------------
def expected(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each numeric key of metrics.jsonl: its (step, value) points, in order."""
    points: dict[str, list[tuple[int, float]]] = {}
    for row in runs.read_metrics(run_dir):
        for key, value in trackers.scalars(row).items():
            points.setdefault(key, []).append((row["step"], value))
    return points


def tensorboard_points(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir / runs.TENSORBOARD_DIR), size_guidance={ea.SCALARS: 0})  # 0: keep all
    acc.Reload()  # all event files of the folder in order, honouring purge_step
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def as_float32(points: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard stores scalars as float32."""
    return {k: [(s, float(np.float32(v))) for s, v in pts] for k, pts in points.items()}


def wandb_records(path: Path) -> list[bytes]:
    """The records of a `.wandb` file: W&B's LevelDB-style log (a 7-byte file header `:W&B`, magic, version;
    32 KiB blocks; each chunk a 7-byte header: crc32c, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4).
    wandb 0.31 ships no Python reader for it (its `datastore` module is gone), so this is the format, read."""
    data, block, header = path.read_bytes(), 32 * 1024, 7
    assert data[:4] == b":W&B", path
    records, pending, pos = [], b"", header
    while pos + header <= len(data):
        if block - pos % block < header:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            pos += block - pos % block
            continue
        chunk, pos = data[pos + header : pos + header + length], pos + header + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
        else:
            raise AssertionError(f"{path}: chunk type {kind} at {pos}")
    return records


def wandb_points(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """History of every offline part of the run, in start order (the order `wandb sync --id` uploads them)."""
    from wandb.proto import wandb_internal_pb2 as pb

    points: dict[str, list[tuple[int, float]]] = {}
    for part in sorted((run_dir / runs.WANDB_DIR).glob("offline-run-*")):
        (log,) = part.glob("run-*.wandb")
        for raw in wandb_records(log):
            record = pb.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") != "history":
                continue
            step = record.history.step.num
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):  # W&B's own _step, _runtime, _timestamp
                    points.setdefault(key, []).append((step, json.loads(item.value_json)))
    return points


def ledger(run_dir: Path) -> dict:
    return json.loads((run_dir / runs.MIRRORED).read_text())


def stop_after_checkpoint(monkeypatch, nth: int) -> None:
    """The run dies right after its `nth` checkpoint is saved, before its mirrors hear of it."""
    real, calls = checkpoint.save, {"n": 0}

    def save(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == nth:
            raise Killed

    monkeypatch.setattr(checkpoint, "save", save)


# --- tests ------------------------------------------------------------------------------------------------------
def test_tensorboard_holds_exactly_the_metrics(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    train.start(tiny_config(TENSORBOARD), run_dir, progress=False).run()
    want = expected(run_dir)
    assert {"train/loss", "train_inferred/acc", "test_inferred_id/acc", "lr"} <= set(want)
    assert tensorboard_points(run_dir) == as_float32(want)  # every key, every step once, same values
    assert ledger(run_dir) == {"tensorboard": 60}
    assert not (run_dir / runs.WANDB_DIR).exists()


def test_no_mirror_asked_for_makes_no_files(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    train.start(tiny_config("train.steps=5"), run_dir, progress=False).run()
    for name in (runs.TENSORBOARD_DIR, runs.WANDB_DIR, runs.MIRRORED):
        assert not (run_dir / name).exists(), name


# checkpoints at steps 1, 4, 20, 60; the run dies right after saving the nth; its mirrors then hold up to `held`.
# nth=4: the resume starts at the last step with nothing to train, and mirrors (20, 60] all the same.
@pytest.mark.parametrize(("nth", "held"), [(3, 4), (4, 20)])
def test_wandb_offline_holds_exactly_the_metrics_and_a_resume_adds_no_step_twice(
    tiny_config, tmp_path, monkeypatch, offline_wandb, nth, held
):
    pytest.importorskip("tensorboard")
    run_dir, real_save = tmp_path / "run", checkpoint.save
    stop_after_checkpoint(monkeypatch, nth)
    first = train.start(tiny_config(WANDB, TENSORBOARD), run_dir, progress=False)
    with pytest.raises(Killed):
        first.run()
    first._lock.close()
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert ledger(run_dir)["wandb"] == ledger(run_dir)["tensorboard"] == held
    assert max(s for pts in wandb_points(run_dir).values() for s, _ in pts) == held

    train.resume(run_dir, progress=False).run()
    want = expected(run_dir)
    assert wandb_points(run_dir) == want  # each step once across both parts, values bit for bit
    assert tensorboard_points(run_dir) == as_float32(want)
    parts = sorted(p.name for p in (run_dir / runs.WANDB_DIR).glob("offline-run-*"))
    book = ledger(run_dir)
    assert len(parts) == 2 and sorted(book["wandb_parts"]) == parts and book["wandb"] == 60
    assert all(f"-{book['wandb_id']}" in p for p in parts)  # one W&B run id across processes
    assert not list(offline_wandb.rglob("*.wandb"))  # nothing went to W&B's default folders


def test_a_death_between_the_mirrors_and_their_ledger_writes_no_point_twice(
    tiny_config, tmp_path, monkeypatch, offline_wandb
):
    pytest.importorskip("tensorboard")
    """The process dies after TensorBoard flushed and W&B logged (and even finished) the rows of checkpoint 20,
    before the ledger says so: the resume hides TensorBoard's extra points (purge_step) and rebuilds the W&B
    part the ledger does not count."""
    run_dir = tmp_path / "run"
    real_save, real_close, calls, stale = trackers.Mirrors._save, trackers.Mirrors.close, {"n": 0}, []

    def save(self):
        calls["n"] += 1
        if calls["n"] == 3:  # flushes at checkpoints 1, 4, 20
            raise Killed
        real_save(self)

    monkeypatch.setattr(trackers.Mirrors, "_save", save)
    monkeypatch.setattr(trackers.Mirrors, "close", lambda self, failed=False: stale.append(self))  # dead: no close
    first = train.start(tiny_config(WANDB, TENSORBOARD), run_dir, progress=False)
    with pytest.raises(Killed):
        first.run()
    first._lock.close()
    (mirrors,) = stale
    tb, wb = mirrors.mirrors
    wb.run.finish()  # W&B wrote its part completely, but the ledger never heard of it
    tb.writer.close()
    assert ledger(run_dir) == {"tensorboard": 4}
    raw = tensorboard_points(run_dir)["train/loss"]
    assert [s for s, _ in raw][-1] == 20  # on disk beyond the ledger: the resume must hide these
    monkeypatch.setattr(trackers.Mirrors, "_save", real_save)
    monkeypatch.setattr(trackers.Mirrors, "close", real_close)

    train.resume(run_dir, progress=False).run()
    want = expected(run_dir)
    assert tensorboard_points(run_dir) == as_float32(want)
    assert wandb_points(run_dir) == want
    assert len(list((run_dir / runs.WANDB_DIR).glob("offline-run-*"))) == 1  # the uncounted part was rebuilt


@pytest.mark.parametrize(
    ("package", "setting", "extra"), [("tensorboard", TENSORBOARD, "tb"), ("wandb", WANDB, "wandb")]
)
def test_a_missing_package_is_one_error_line_before_any_run_folder(
    tmp_path, monkeypatch, capsys, package, setting, extra
):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
    run_dir = tmp_path / "run"
    argv = ["train", "demo", "--out", str(run_dir), "--quiet"]
    for item in [*TINY, setting]:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"pip install -e '.[{extra}]'" in err[0], err
    assert not run_dir.exists()
    with pytest.raises(UserError, match=rf"train\.{package}=.* needs the {package} package"):
        trackers.check_installed(train.config.load("demo", [*TINY, setting]).train)


def test_online_is_not_a_choice(tiny_config):
    with pytest.raises(UserError, match="train.wandb='online' is not one of off, offline"):
        tiny_config('train.wandb="online"')


@pytest.mark.slow
def test_sigkill_at_random_moments_mirrors_every_step_once(tmp_path, offline_wandb):
    """Real kill -9 (no `finally` runs): TensorBoard and W&B still end with each metrics.jsonl step once."""
    pytest.importorskip("tensorboard")
    from tests.test_reliability import cli, kill_after_progress

    run_dir = tmp_path / "run"
    settings = [*TINY, "train.steps=150", "train.eval_points=60", "train.ckpt_points=60", TENSORBOARD, WANDB]
    command = cli("train", "demo", "--out", str(run_dir), *[a for s in settings for a in ("--set", s)])
    env = os.environ | {"PYTHONHASHSEED": "0"}
    rng, kills = random.Random(7), 0
    while True:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 4 and kill_after_progress(proc, run_dir, rng, during_write=False):
            kills += 1
        else:
            assert proc.wait() == 0, proc.stderr.read().decode()
            break
        command = cli("train", "--resume", str(run_dir))
    assert kills >= 3
    want = expected(run_dir)
    assert tensorboard_points(run_dir) == as_float32(want)
    assert wandb_points(run_dir) == want
    parts = list((run_dir / runs.WANDB_DIR).glob("offline-run-*"))
    assert [p.name for p in parts] == ledger(run_dir)["wandb_parts"]  # the killed processes' parts were rebuilt
