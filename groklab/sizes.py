"""Memory a run needs, estimated from its config before any data is generated or any model built, so a size this
machine cannot hold is one `error:` line at once, not minutes of swapping (`--set data.n_entities=100000000` held
8.5 GB after 51 s of generating, and still growing).

    check_data(cfg.data)   # `groklab data` and every `tasks.generate`: the data alone
    check_run(cfg)         # a run, before its data: data + model with optimiser state + activations at batch_size

Each task config states what it will build (`size() -> DataSize`, beside its generator, which knows its arrays);
this module turns that into bytes and compares them with the memory available now. The estimates are rough upper
bounds (measured peak resident memory of generation was 0.4-1.0x the data estimate, docs/LOG.md), made to refuse
sizes off by orders of magnitude, not to fit a run into the last gigabyte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab.errors import UserError

INT64, FLOAT32 = 8, 4
ROW_OVERHEAD = 128  # bytes of an example besides its tokens: length, answer, ~10 int64 fields, a kind label
WORKING_COPIES = 3  # a generator holds its rows up to three times at its peak (parts, concatenated, shuffled)
PYTHON_TOKEN_BYTES = 128  # a token held as Python objects (tuples of words, spans, the set of distinct draws)
OPTIMISER_COPIES = 3  # per parameter: its gradient and Adam's m and v (Muon's momentum needs fewer)
SAVED_PER_LAYER = 16  # activations autograd keeps per layer and token, in units of d_model (LNs, QKV, MLP ...)
LOGIT_COPIES = 3  # logits, their softmax and its gradient, at every position
FILTER_COPIES = {"none": 0, "ema": 1}  # gradient-sized tensors a filter keeps; "ma": its window (filter.window)


@dataclass(frozen=True)
class DataSize:
    """What a task config will generate: `rows` examples (training set and probes) of at most `n_ctx` tokens
    over `vocab` tokens, plus `scratch` bytes its generator holds on the way (every candidate fact, Python
    objects). `sequence`: a target at every position (another int64 per token). `knobs`: the data fields that
    make it large, named in the error."""

    rows: int
    n_ctx: int
    vocab: int
    knobs: tuple[str, ...]
    scratch: int = 0
    sequence: bool = False

    @property
    def bytes(self) -> int:
        tokens = self.n_ctx * (2 if self.sequence else 1)
        return self.rows * (ROW_OVERHEAD + INT64 * tokens) * WORKING_COPIES + self.scratch


def n_params(model: Any, vocab: int, n_ctx: int) -> tuple[int, int]:
    """(embedding parameters, block parameters) of config.ModelConfig `model` over this vocabulary and context:
    token and position embeddings (and the unembedding unless tied); per layer attention (4·d² + 4·d), MLP
    (2·d·d_mlp + d_mlp + d) and two LayerNorms, once per distinct layer (loops share them), plus the final LN."""
    d = model.d_model
    embed = (vocab + n_ctx) * d + (0 if model.tie_embeddings else vocab * d)
    layer = 4 * d * d + 4 * d + 2 * d * model.d_mlp + model.d_mlp + d + 4 * d
    return embed, model.n_layers * layer + 2 * d


@dataclass(frozen=True)
class Estimate:
    """Bytes: `data` generated, `model` (parameters, gradients, optimiser and filter state), `activations`
    (one training batch, forward and backward)."""

    data: int
    model: int = 0
    activations: int = 0

    @property
    def total(self) -> int:
        return self.data + self.model + self.activations


def estimate_run(cfg: Any) -> tuple[Estimate, tuple[str, ...]]:
    """The estimate for config.RunConfig `cfg` and the knobs to lower: the data's, unless the blocks (not the
    vocabulary's embeddings) or the batch's activations are the largest part."""
    size, m, batch = cfg.data.size(), cfg.model, cfg.train.batch_size
    embed, blocks = n_params(m, size.vocab, size.n_ctx)
    window = cfg.filter.window if cfg.filter.kind == "ma" else FILTER_COPIES[cfg.filter.kind]
    model = FLOAT32 * (embed + blocks) * (1 + OPTIMISER_COPIES + window)
    per_token = m.depth * (SAVED_PER_LAYER * m.d_model + 2 * m.d_mlp + 2 * m.n_heads * size.n_ctx)
    activations = FLOAT32 * batch * size.n_ctx * (per_token + LOGIT_COPIES * size.vocab)
    est = Estimate(size.bytes, model, activations)
    if activations == max(est.data, model, activations) and per_token > LOGIT_COPIES * size.vocab:
        return est, ("train.batch_size",)
    if model == max(est.data, model, activations) and blocks > embed:
        return est, ("model.d_model", "model.n_layers")
    return est, size.knobs


def available_bytes() -> int | None:
    """Memory this process can still take: /proc/meminfo's MemAvailable (else os.sysconf's available pages),
    capped by a cgroup v2 limit (a container's) less what the cgroup uses; None where nothing says."""
    found = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit, used = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.is_file() and used.is_file() and limit.read_text().strip().isdigit():
        found = min(found, int(limit.read_text()) - int(used.read_text()))
    return found


def gigabytes(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def refuse_if_too_big(est: Estimate, knobs: tuple[str, ...], sections: dict[str, Any], what: str,
                      available: int | None) -> None:
    """One UserError line when `est` exceeds `available` bytes (None: the machine's, now)."""
    available = available_bytes() if available is None else available
    if available is None or est.total <= available:
        return
    values = [f"{k} ({getattr(sections[k.split('.')[0]], k.split('.')[1]):,})" for k in knobs]
    parts = (f" ({gigabytes(est.data)} data, {gigabytes(est.model)} model with optimiser state, "
             f"{gigabytes(est.activations)} activations at train.batch_size={sections['train'].batch_size})"
             if est.model else "")
    raise UserError(f"{what} needs about {gigabytes(est.total)} of memory{parts} but this machine has "
                    f"{gigabytes(available)} available; lower {' or '.join(values)}")


def check_data(data: Any, available: int | None = None) -> None:
    """Refuse a task config whose data alone would not fit in memory (before generating it)."""
    refuse_if_too_big(Estimate(data.size().bytes), data.size().knobs, {"data": data}, f"data.task={data.task!r}",
                      available)


def check_run(cfg: Any, available: int | None = None) -> None:
    """Refuse a run whose data, model and one batch's activations would not fit in memory (before any of them
    is built)."""
    est, knobs = estimate_run(cfg)
    sections = {"data": cfg.data, "model": cfg.model, "train": cfg.train}
    refuse_if_too_big(est, knobs, sections, f"this run (data.task={cfg.data.task!r})", available)
