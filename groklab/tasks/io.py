"""Dataset folders on disk, in two formats; `load_dataset` tells them apart. Single-answer tasks only: the
sequence tasks (question-formation, tense-inflection, dyck) are refused with a UserError; they regenerate
from their config in well under a second.

groklab format (`fmt="groklab"`):
    manifest.json      format, task, seed, full data config, roles, n_ctx, splits, sha256 of every file, info
    vocab.json         the token list; id = position, `<pad>` first
    train.jsonl        the training set, one fact per line:
                       {"fields":{"answer":"<e_7>","bridge":null,...},"input":["<e_1>","<r_3>"],"kind":"atomic",
                        "target":"<e_7>"}   (sorted keys, no spaces; absent fields are null)
    probes/NAME.jsonl  one file per probe (a folder, since modular has a probe called `train`)
  Same data and config → byte-identical files. Loading checks every sha256 and every token against the vocab.

paper format (`fmt="paper"`, Wang et al. 2024, github.com/OSU-NLP-Group/GrokkedTransformer):
    train.json / valid.json / test.json: JSON lists of {"input_text", "target_text", "type"}; tokens are
    concatenated without spaces and the target repeats the input, then the answer and `</a>`. test.json holds
    every probe, `type` naming it (the paper spells the ID test `test_inferred_iid`, and complex reasoning's
    test `test_hard`); valid.json repeats the OOD test probe, as the paper's notebooks do.
    vocab.json: the tokens to add to GPT-2's vocabulary, special tokens included.
  The separators the paper puts in inputs (`<q>`, `<mask>`, `</q>`, `<a>`) carry no information and are dropped
  on import; structure fields are rebuilt from the facts (a bridge entity from the atomic facts in train.json,
  comparison values from every atomic fact in the folder).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from groklab.atomic import atomic_dir
from groklab.errors import UserError
from groklab.tasks import TASKS
from groklab.tasks.comparison import TEMPLATE_POSITIONS
from groklab.tasks.dataset import Split, TaskData, Vocab
from groklab.tasks.knowledge import ABSENT, lookup_pairs
from groklab.tasks.paper import PaperFormat

FORMAT = "groklab-dataset/1"
SPECIALS = ("<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>")  # the paper notebooks' special tokens
TOKEN = re.compile(r"<[^<>]*>")
PAPER_TASKS = tuple(name for name, spec in TASKS.items() if spec.paper is not None)  # the registry's


def write_dataset(data: TaskData, config: dict, out_dir: Path, fmt: str = "groklab") -> None:
    """Write `data` to `out_dir` atomically (a temp folder beside it, then a rename); an existing dataset
    folder there is replaced, any other non-empty folder is refused."""
    writers = {"groklab": _write_groklab, "paper": _write_paper}
    if data.train.is_sequence:
        raise UserError(
            f"{data.task} is a sequence task (one LM sequence per example), which dataset folders do not hold; "
            "generate it in-process with groklab.tasks.generate(config.data)"
        )
    if fmt not in writers:
        raise UserError(f"dataset format {fmt!r} is unknown; use one of {', '.join(writers)}")
    if fmt == "paper" and TASKS[data.task].paper is None:
        tasks = ", ".join(PAPER_TASKS)
        raise UserError(f"the paper's format exists for {tasks}, not {data.task!r}; use --format groklab")
    with _atomic_dir(Path(out_dir)) as tmp:
        writers[fmt](data, config, tmp)


def load_dataset(path: Path) -> TaskData:
    """Read a dataset folder in either format (groklab if it has manifest.json, else the paper's)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such dataset folder; create one with `groklab data <task> --out {path}`")
    if (path / "manifest.json").exists():
        return _load_groklab(path)
    if (path / "train.json").exists():
        return _load_paper(path)
    raise UserError(
        f"{path}: neither manifest.json nor train.json found; create a dataset with `groklab data <task> --out {path}`"
    )


# ---- shared -------------------------------------------------------------------------------------------


def _is_dataset(path: Path) -> bool:
    return (path / "manifest.json").exists() or (path / "train.json").exists()


@contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """runs.atomic_dir for a dataset folder: an existing dataset is replaced, any other non-empty folder refused."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not _is_dataset(out_dir))):
        raise UserError(f"{out_dir} exists and is not a dataset folder; choose another --out or remove it")
    with atomic_dir(out_dir, replace=True) as tmp:
        yield tmp


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode()


def _read_json(path: Path, fix: str) -> object:
    if not path.is_file():
        raise UserError(f"{path}: missing; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); {fix}") from None


def _token_ids(tokens: list, index: dict, where: str, fix: str) -> np.ndarray:
    try:
        return np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: token {exc.args[0]!r} is not in vocab.json; {fix}") from None


def _padded(flat: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Right-padded [N, width] matrix of ragged rows given end to end in `flat`."""
    tokens = np.zeros((len(lengths), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    tokens[rows, cols] = flat
    return tokens


def _with_width(split: Split, width: int) -> Split:
    pad = width - split.tokens.shape[1]
    tokens = np.pad(split.tokens, ((0, 0), (0, pad))) if pad > 0 else split.tokens
    return Split(tokens, split.lengths, split.answers, split.fields, split.kinds)


# ---- groklab format -----------------------------------------------------------------------------------


def _jsonl(split: Split, vocab: Vocab) -> bytes:
    """Encode a split as JSON lines: one %-template per line, filled from whole columns of quoted tokens."""
    quoted = np.array(["null"] + [json.dumps(t) for t in vocab.tokens], dtype=object)
    q = lambda ids: quoted[np.asarray(ids) + 1]  # noqa: E731  (ABSENT = -1 -> null)
    inputs = "[" + q(split.tokens[:, 0])
    for p in range(1, split.tokens.shape[1]):
        inputs = inputs + np.where(split.lengths > p, "," + q(split.tokens[:, p]), "")
    names = sorted(split.fields)
    kinds, inverse = np.unique(split.kinds, return_inverse=True)
    kind = np.array([json.dumps(str(k)) for k in kinds], dtype=object)[inverse.ravel()]
    columns = [q(split.fields[n]).tolist() for n in names] + [inputs.tolist(), kind.tolist(), q(split.answers).tolist()]
    fields = ",".join(f"{json.dumps(n)}:%s" for n in names)
    template = '{"fields":{' + fields + '},"input":%s],"kind":%s,"target":%s}\n'
    return "".join([template % row for row in zip(*columns, strict=True)]).encode()


def _write_groklab(data: TaskData, config: dict, out: Path) -> None:
    files = {"vocab.json": _write(out / "vocab.json", _json_bytes(list(data.vocab.tokens)))}
    entries = []
    for name, split in [("train", data.train), *data.probes.items()]:
        rel = "train.jsonl" if not entries else f"probes/{name}.jsonl"
        files[rel] = _write(out / rel, _jsonl(split, data.vocab))
        entries.append({"name": name, "file": rel, "rows": len(split), "fields": sorted(split.fields)})
    manifest = {
        "format": FORMAT,
        "task": data.task,
        "seed": config.get("seed"),
        "config": config,
        "roles": data.roles,
        "n_ctx": data.n_ctx,
        "train": entries[0],
        "probes": entries[1:],
        "files": files,
        "info": data.info,
    }
    (out / "manifest.json").write_bytes(_json_bytes(manifest))


def _read_jsonl(path: Path, entry: dict, index: dict, fix: str) -> Split:
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        rows = json.loads("[" + ",".join(lines) + "]")
        inputs = [r["input"] for r in rows]
        lengths = np.fromiter(map(len, inputs), dtype=np.int64, count=len(rows))
        flat = [t for row in inputs for t in row]
        fields = {f: [r["fields"][f] for r in rows] for f in entry["fields"]}
        targets, kinds = [r["target"] for r in rows], [str(r["kind"]) for r in rows]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: malformed dataset line ({type(exc).__name__}: {exc}); {fix}") from None
    if len(rows) != entry["rows"] or (len(rows) and lengths.min() < 1):
        raise UserError(f"{path}: {len(rows)} rows or an empty input, manifest.json says {entry['rows']}; {fix}")
    with_null = {**index, None: ABSENT}
    return Split(
        tokens=_padded(_token_ids(flat, index, str(path), fix), lengths, int(lengths.max(initial=1))),
        lengths=lengths,
        answers=_token_ids(targets, index, str(path), fix),
        fields={f: _token_ids(v, with_null, str(path), fix) for f, v in fields.items()},
        kinds=np.array(kinds, dtype=str),
    )


def _load_groklab(path: Path) -> TaskData:
    manifest = _read_json(path / "manifest.json", f"regenerate with `groklab data <task> --out {path}`")
    needed = {"format", "task", "roles", "n_ctx", "train", "probes", "files", "info"}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or needed - set(manifest):
        raise UserError(
            f"{path / 'manifest.json'}: not a {FORMAT} manifest; regenerate the dataset with "
            f"`groklab data <task> --out {path}`"
        )
    fix = f"regenerate with `groklab data {manifest.get('task', '<task>')} --out {path}`"
    for rel, digest in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise UserError(f"{file}: missing (listed in manifest.json); {fix}")
        if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise UserError(f"{file}: sha256 mismatch with manifest.json; {fix}")
    tokens = _read_json(path / "vocab.json", fix)
    try:
        vocab = Vocab(tuple(tokens))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path / 'vocab.json'}: {exc}; {fix}") from None
    index = vocab.index()
    read = lambda e: _with_width(_read_jsonl(path / e["file"], e, index, fix), manifest["n_ctx"])  # noqa: E731
    probes = {e["name"]: read(e) for e in manifest["probes"]}
    return TaskData(manifest["task"], vocab, read(manifest["train"]), probes, manifest["roles"], manifest["info"])


# ---- the paper's format -------------------------------------------------------------------------------


def _paper(task: str) -> PaperFormat:
    spec = TASKS[task].paper
    assert spec is not None, f"{task} has no paper format"  # callers choose tasks from PAPER_TASKS
    return spec


def _paper_items(task: str, split: Split, vocab: Vocab, types: list[str] | np.ndarray) -> list[dict]:
    names, items = vocab.tokens, []
    columns = (split.tokens.tolist(), split.lengths.tolist(), split.answers.tolist(), split.kinds.tolist(), types)
    for row, length, answer, kind, typ in zip(*columns, strict=True):
        source, target = _paper(task).templates[kind]
        text = source.format(*(names[t] for t in row[:length] if names[t] not in SPECIALS))
        items.append({"input_text": text, "target_text": text + target.format(a=names[answer]), "type": str(typ)})
    return items


def _paper_name(task: str, probe: str) -> str:
    return _paper(task).names().get(probe, probe)


def _write_paper(data: TaskData, config: dict, out: Path) -> None:
    dump = lambda obj: json.dumps(obj).encode()  # noqa: E731  (the notebooks' json.dump: one line)
    _write(out / "train.json", dump(_paper_items(data.task, data.train, data.vocab, data.train.kinds)))
    test = []
    for name, split in data.probes.items():
        test += _paper_items(data.task, split, data.vocab, [_paper_name(data.task, name)] * len(split))
    _write(out / "test.json", dump(test))
    valid = data.roles.get("test_ood", data.roles["test_id"])
    valid_split = data.probes[valid]
    _write(
        out / "valid.json",
        dump(_paper_items(data.task, valid_split, data.vocab, [_paper_name(data.task, valid)] * len(valid_split))),
    )
    tokens = list(data.vocab.tokens[1:]) + [t for t in SPECIALS if t not in data.vocab.tokens]
    _write(out / "vocab.json", dump(tokens))
    provenance = {"format": "paper", "task": data.task, "config": config, "roles": data.roles}
    _write(out / "groklab.json", _json_bytes(provenance))  # ignored by the paper's scripts and by the loader


def _parse_items(
    items: object, where: str, index: dict, fix: str, keep: tuple[str, ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens [N, 3] with ABSENT after the end, lengths, answers) of paper items, separators dropped except
    `keep` (comparison keeps `<q>` and `<mask>`: its inferred facts are then [N, 5], the paper's template)."""
    flat, lengths, answers = [], [], []
    try:
        for k, item in enumerate(items):
            source, target = item["input_text"], item["target_text"]
            found, rest = TOKEN.findall(source), TOKEN.findall(target[len(source) :])
            answer = [t for t in rest if t not in SPECIALS]
            if not target.startswith(source) or "".join(found) != source or len(answer) != 1:
                raise UserError(f"{where}: item {k} is not `input tokens` -> `input + one answer token`; {fix}")
            tokens = [t for t in found if t not in SPECIALS or t in keep]
            flat += tokens
            lengths.append(len(tokens))
            answers.append(answer[0])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: items need input_text and target_text ({exc}); {fix}") from None
    lengths = np.array(lengths, dtype=np.int64)
    inferred = 3 + len(keep)
    if np.any((lengths < 2) | (lengths > inferred) | ((lengths > 2) & (lengths < inferred))):
        raise UserError(f"{where}: facts must have 2 (atomic) or 3 (inferred) input tokens; {fix}")
    inputs = _padded(_token_ids(flat, index, where, fix) + 1, lengths, inferred) - 1  # pad with ABSENT
    return inputs, lengths, _token_ids(answers, index, where, fix)


def _fields(task: str, inputs: np.ndarray, answers: np.ndarray, table: tuple) -> dict[str, np.ndarray]:
    """Structure fields of parsed facts; `table` holds (a, b, v) rows of atomic facts `a b -> v`."""
    atomic = inputs[:, 2] == ABSENT
    keep = lambda x, on: np.where(on, x, ABSENT)  # noqa: E731
    if TASKS[task].facts == "chain":
        bridge = lookup_pairs((inputs[:, 0], inputs[:, 1]), table)
        return {
            "head": inputs[:, 0],
            "r1": inputs[:, 1],
            "r2": inputs[:, 2],
            "bridge": keep(bridge, ~atomic),
            "answer": answers,
        }
    attr = np.where(atomic, inputs[:, 1], inputs[:, 0])
    at = TEMPLATE_POSITIONS["paper" if inputs.shape[1] == 5 else "short"]
    e1, e2 = inputs[:, at["e1"]], inputs[:, at["e2"]]
    return {
        "attribute": attr,
        "entity": keep(inputs[:, 0], atomic),
        "value": keep(answers, atomic),
        "e1": keep(e1, ~atomic),
        "e2": keep(e2, ~atomic),
        "v1": keep(lookup_pairs((e1, attr), table), ~atomic),
        "v2": keep(lookup_pairs((e2, attr), table), ~atomic),
        "answer": answers,
    }


def _detect_task(vocab: Vocab, types: set[str], where: Path) -> str:
    """The task whose marker prefixes a token of the vocabulary; of several, the one whose own probe types the
    files hold (complex's `test_hard`), else the one without own types (comparison)."""
    marked = [t for t in PAPER_TASKS if any(tok.startswith(_paper(t).marker) for tok in vocab.tokens)]
    for task in sorted(marked, key=lambda t: -len(_paper(t).probe_names)):
        if set(_paper(task).probe_names.values()) <= types:
            return task
    markers = " nor ".join(dict.fromkeys(f"{_paper(t).marker}i>" for t in PAPER_TASKS))
    raise UserError(
        f"{where}: vocab.json has no token like {markers}; only {', '.join(PAPER_TASKS)} datasets exist in the "
        "paper's format"
    )


def _load_paper(path: Path) -> TaskData:
    fix = f"re-export it with `groklab data <task> --format paper --out {path}`"
    names = _read_json(path / "vocab.json", fix)
    if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
        raise UserError(f"{path / 'vocab.json'}: must be a JSON list of token strings; {fix}")
    vocab = Vocab(("<pad>", *dict.fromkeys(t for t in names if t not in SPECIALS)))
    index = vocab.index()
    train_items, test_items = _read_json(path / "train.json", fix), _read_json(path / "test.json", fix)
    if not isinstance(train_items, list) or not isinstance(test_items, list):
        raise UserError(f"{path}: train.json and test.json must be JSON lists of items; {fix}")
    types = [str(item.get("type", "test_inferred")) if isinstance(item, dict) else "" for item in test_items]
    task = _detect_task(vocab, set(types), path / "vocab.json")
    separators = _paper(task).separators
    keep = separators if separators and set(separators) <= set(names) else ()
    if keep:  # comparison keeps the paper template's `<q>` and `<mask>` as input tokens
        vocab = Vocab(("<pad>", *dict.fromkeys(t for t in names if t not in SPECIALS or t in keep)))
        index = vocab.index()
    renames = {v: k for k, v in _paper(task).names().items()}
    parsed = {"train": _parse_items(train_items, str(path / "train.json"), index, fix, keep)}
    test = _parse_items(test_items, str(path / "test.json"), index, fix, keep)
    for typ in dict.fromkeys(types):
        rows = np.flatnonzero(np.array(types) == typ)
        parsed[renames.get(typ, typ)] = tuple(x[rows] for x in test)
    table = _atomic_table(task, parsed)
    splits = {name: _paper_split(task, p, table) for name, p in parsed.items()}
    train = splits.pop("train")
    roles = _paper_roles(task, splits, path)
    return TaskData(task, vocab, train, splits, roles, {"format": "paper"})


def _atomic_table(task: str, parsed: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, v) of atomic facts: composition (head, relation, tail) from train.json only (the paper trains on
    every atomic fact); comparison (entity, attribute, value) from every split, since complex reasoning keeps
    the OOD values out of training."""
    sources = [parsed["train"]] if _paper(task).atomic_from_train else list(parsed.values())
    rows = [(x[x[:, 2] == ABSENT], a[x[:, 2] == ABSENT]) for x, _, a in sources]
    inputs = np.concatenate([r[0] for r in rows])
    return inputs[:, 0], inputs[:, 1], np.concatenate([r[1] for r in rows])


def _paper_split(task: str, parsed: tuple, table: tuple) -> Split:
    inputs, lengths, answers = parsed
    kinds = np.where(lengths == 2, "atomic", "inferred")
    return Split(np.where(inputs == ABSENT, 0, inputs), lengths, answers, _fields(task, inputs, answers, table), kinds)


def _paper_roles(task: str, probes: dict[str, Split], path: Path) -> dict[str, str]:
    """The task's registered roles (TaskSpec.roles), for the probes the paper's files hold."""
    wanted = dict(TASKS[task].roles)
    for role, name in _paper(task).paper_roles.items():  # the paper's own name where ours is absent
        if wanted.get(role) not in probes:
            wanted[role] = name
    roles = {role: name for role, name in wanted.items() if name in probes}
    if "train" not in roles or "test_id" not in roles:
        raise UserError(
            f"{path / 'test.json'}: needs probe types {wanted['train']!r} and "
            f"{_paper_name(task, wanted['test_id'])!r}; re-export or regenerate the dataset"
        )
    return roles
