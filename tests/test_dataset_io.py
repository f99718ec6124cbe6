"""Dataset folders: both formats round-trip exactly, files are byte-identical for the same seed, writes are
atomic, and every corrupt or missing file is a one-line UserError naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from groklab.errors import UserError
from groklab.tasks import TASKS, generate, io
from groklab.tasks.dataset import TaskData
from groklab.tasks.io import load_dataset, write_dataset

SMALL = {
    "composition": {"n_entities": 60, "n_relations": 30, "phi": 9.0, "probe_size": 500},
    "comparison": {"n_entities": 60, "phi": 3.6, "probe_size": 500},
    "complex": {"n_entities": 100, "n_test_per_label": 5, "probe_size": 500},
    "modular": {"modulus": 13, "operation": "/"},
}


@pytest.fixture(scope="module")
def datasets() -> dict[str, tuple[TaskData, dict]]:
    out = {}
    for task, kw in SMALL.items():
        cfg = TASKS[task].config(**kw)
        out[task] = (generate(cfg), dict(cfg.__dict__))
    return out


def assert_same(a: TaskData, b: TaskData) -> None:
    assert (a.task, a.vocab, a.roles, list(a.probes)) == (b.task, b.vocab, b.roles, list(b.probes))
    for x, y in [(a.train, b.train), *((a.probes[k], b.probes[k]) for k in a.probes)]:
        for name in ("tokens", "lengths", "answers", "kinds"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), name
        assert x.fields.keys() == y.fields.keys()
        for name in x.fields:
            assert np.array_equal(x.fields[name], y.fields[name]), name


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", list(SMALL))
def test_groklab_format_round_trips(datasets, task, tmp_path):
    data, config = datasets[task]
    write_dataset(data, config, tmp_path / "d")
    loaded = load_dataset(tmp_path / "d")
    assert_same(data, loaded)
    assert loaded.info == json.loads(json.dumps(data.info))
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["config"] == config and manifest["seed"] == 0 and manifest["task"] == task


@pytest.mark.parametrize("task", ["composition", "comparison", "complex"])
def test_paper_format_round_trips(datasets, task, tmp_path):
    data, config = datasets[task]
    write_dataset(data, config, tmp_path / "p", fmt="paper")
    assert_same(data, load_dataset(tmp_path / "p"))


def test_paper_export_looks_like_the_papers_files(datasets, tmp_path):
    for task in ("composition", "comparison", "complex"):
        write_dataset(*datasets[task], tmp_path / task, fmt="paper")
        train, test, valid = (
            json.loads((tmp_path / task / f"{n}.json").read_text()) for n in ("train", "test", "valid")
        )
        vocab = json.loads((tmp_path / task / "vocab.json").read_text())
        assert {"<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>"} <= set(vocab) and "<pad>" not in vocab
        for item in train + test + valid:
            assert set(item) == {"input_text", "target_text", "type"}  # the paper's DataFrame needs equal keys
            assert item["target_text"].startswith(item["input_text"]) and item["target_text"].endswith("</a>")
        types = {item["type"] for item in test}
        assert "test_inferred_iid" in types or "test_hard" in types
    comp = json.loads((tmp_path / "comparison" / "test.json").read_text())
    example = next(i for i in comp if i["type"] == "test_inferred_ood")
    assert example["input_text"].startswith("<attr_") and "<q><e_" in example["input_text"]
    assert "<mask>" in example["input_text"]
    with pytest.raises(UserError, match="paper's format"):
        write_dataset(*datasets["modular"], tmp_path / "m", fmt="paper")


def test_loads_a_folder_written_like_the_paper_notebooks(tmp_path):
    """A hand-made composition folder in the notebook's own layout: no `type` in train.json."""
    (tmp_path / "train.json").write_text(
        json.dumps(
            [
                {"input_text": "<e_0><r_0>", "target_text": "<e_0><r_0><e_1></a>"},
                {"input_text": "<e_1><r_1>", "target_text": "<e_1><r_1><e_2></a>"},
                {"input_text": "<e_2><r_0>", "target_text": "<e_2><r_0><e_0></a>"},
                {"input_text": "<e_0><r_0><r_1>", "target_text": "<e_0><r_0><r_1><e_2></a>"},
            ]
        )
    )
    probes = [
        {"input_text": "<e_0><r_0><r_1>", "target_text": "<e_0><r_0><r_1><e_2></a>", "type": "train_inferred"},
        {"input_text": "<e_1><r_1><r_0>", "target_text": "<e_1><r_1><r_0><e_0></a>", "type": "test_inferred_iid"},
        {"input_text": "<e_2><r_0>", "target_text": "<e_2><r_0><e_0></a>", "type": "ood_atomic"},
    ]
    (tmp_path / "test.json").write_text(json.dumps(probes))
    (tmp_path / "valid.json").write_text(json.dumps([]))
    (tmp_path / "vocab.json").write_text(json.dumps(["<e_0>", "<e_1>", "<e_2>", "<r_0>", "<r_1>", "<mask>", "</a>"]))
    data = load_dataset(tmp_path)
    tok = data.vocab.index()
    assert data.task == "composition"
    assert data.roles == {"train": "train_inferred", "test_id": "test_inferred_id", "atomic_ood": "ood_atomic"}
    assert list(data.train.kinds) == ["atomic"] * 3 + ["inferred"]
    assert data.train.fields["bridge"].tolist() == [-1, -1, -1, tok["<e_1>"]]
    assert data.probes["test_inferred_id"].fields["bridge"].tolist() == [tok["<e_2>"]]
    assert data.probes["test_inferred_id"].tokens.tolist() == [[tok["<e_1>"], tok["<r_1>"], tok["<r_0>"]]]


def test_same_seed_gives_byte_identical_files(datasets, tmp_path):
    for fmt in ("groklab", "paper"):
        data, config = datasets["composition"]
        write_dataset(data, config, tmp_path / f"a-{fmt}", fmt=fmt)
        again = generate(TASKS["composition"].config(**SMALL["composition"]))
        write_dataset(again, config, tmp_path / f"b-{fmt}", fmt=fmt)
        assert files(tmp_path / f"a-{fmt}") == files(tmp_path / f"b-{fmt}")
    other = generate(TASKS["composition"].config(**SMALL["composition"], seed=1))
    write_dataset(other, {**config, "seed": 1}, tmp_path / "c")
    assert (tmp_path / "c" / "train.jsonl").read_bytes() != (tmp_path / "a-groklab" / "train.jsonl").read_bytes()


def test_jsonl_lines_are_canonical_json(datasets, tmp_path):
    write_dataset(*datasets["comparison"], tmp_path / "d")
    for path in [tmp_path / "d" / "train.jsonl", *(tmp_path / "d" / "probes").iterdir()]:
        for line in path.read_text().splitlines()[:200]:
            row = json.loads(line)
            assert json.dumps(row, sort_keys=True, separators=(",", ":")) == line
            assert row["target"] == row["fields"]["answer"] and set(row) == {"fields", "input", "kind", "target"}


# ---- failures -------------------------------------------------------------------------------------------


@pytest.fixture
def written(datasets, tmp_path) -> Path:
    write_dataset(*datasets["composition"], tmp_path / "data")
    return tmp_path / "data"


def test_corrupt_file_is_a_sha256_error(written):
    path = written / "probes" / "id_atomic.jsonl"
    path.write_bytes(path.read_bytes().replace(b"<e_1>", b"<e_2>", 1))
    with pytest.raises(
        UserError,
        match=r"id_atomic.jsonl: sha256 mismatch with manifest.json; regenerate with `groklab data composition",
    ):
        load_dataset(written)


def test_missing_file_is_named(written):
    (written / "train.jsonl").unlink()
    with pytest.raises(UserError, match="train.jsonl: missing"):
        load_dataset(written)


def test_unknown_token_is_named_even_with_a_matching_sha256(written):
    path = written / "train.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"<r_1>"', b'"<r_999>"'))
    manifest = json.loads((written / "manifest.json").read_text())
    manifest["files"]["train.jsonl"] = io.hashlib.sha256(path.read_bytes()).hexdigest()
    (written / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="'<r_999>' is not in vocab.json"):
        load_dataset(written)


@pytest.mark.parametrize("name", ["manifest.json", "vocab.json"])
def test_unreadable_json_is_a_user_error(written, name):
    (written / name).write_text("{not json")
    with pytest.raises(UserError, match=name):
        load_dataset(written)


def test_paper_folder_problems_are_user_errors(datasets, tmp_path):
    write_dataset(*datasets["comparison"], tmp_path / "p", fmt="paper")
    (tmp_path / "p" / "test.json").write_text(json.dumps([{"input_text": "<e_0><attr_0>", "target_text": "<e_1>"}]))
    with pytest.raises(UserError, match="test.json: item 0"):
        load_dataset(tmp_path / "p")
    (tmp_path / "p" / "test.json").unlink()
    with pytest.raises(UserError, match="test.json: missing"):
        load_dataset(tmp_path / "p")


def test_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="no such dataset folder"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(UserError, match="neither manifest.json nor train.json"):
        load_dataset(tmp_path)


# ---- atomic writes --------------------------------------------------------------------------------------


def test_refuses_to_overwrite_a_folder_that_is_not_a_dataset(datasets, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not a dataset folder"):
        write_dataset(*datasets["modular"], tmp_path / "notes")
    assert files(tmp_path / "notes") == {"keep.txt": b"mine"}


def test_replaces_an_existing_dataset_and_leaves_no_temp_folders(datasets, tmp_path):
    write_dataset(*datasets["modular"], tmp_path / "d")
    write_dataset(*datasets["composition"], tmp_path / "d", fmt="paper")
    assert load_dataset(tmp_path / "d").task == "composition" and not (tmp_path / "d" / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_failed_write_leaves_nothing_behind(datasets, tmp_path, monkeypatch):
    write_dataset(*datasets["modular"], tmp_path / "d")
    before = files(tmp_path / "d")

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(io, "_jsonl", boom)
    for out in (tmp_path / "d", tmp_path / "new"):
        with pytest.raises(OSError):
            write_dataset(*datasets["modular"], out)
    assert files(tmp_path / "d") == before and sorted(p.name for p in tmp_path.iterdir()) == ["d"]
