"""Task data as tensors on the device, the training loss, and evaluation of every probe in one batched pass.

Two kinds of task share this code. Answer tasks (knowledge bases, modular arithmetic) score one token per
row. Sequence tasks (structural grokking) are language models over whole sequences: the loss covers every
target, and a probe's `acc` is the decisive token's accuracy (the question's first word, the main verb: the
metric Murty et al. 2023 report), `exact` the whole output's exact match and `linear` how often the decisive
token follows the linear rule where it differs from the hierarchical one. A sequence probe's `loss` is the
mean over its rows of each row's mean loss on the scored output (not the training loss, which also covers
the input under `loss_on="full"`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from groklab.model import Transformer
from groklab.tasks.dataset import ABSENT, NO_TARGET, Split, TaskData


@dataclass
class DeviceSplit:
    """A split on the device: inputs, the position where the answer is predicted, and the answer; for
    sequence tasks also the next-token targets, where the scored output starts, and the linear-rule answer."""

    tokens: Tensor  # [N, L] int64
    positions: Tensor  # [N] int64: where the answer is predicted
    answers: Tensor  # [N] int64
    targets: Tensor | None = None  # [N, L] int64, NO_TARGET where there is no loss
    output_start: Tensor | None = None  # [N] int64
    linear: Tensor | None = None  # [N] int64 linear-rule answer, ABSENT where the rules agree

    @classmethod
    def from_split(cls, split: Split, n_ctx: int, device: torch.device) -> DeviceSplit:
        def padded(array, fill: int) -> Tensor:
            out = torch.full((len(split), n_ctx), fill, dtype=torch.long)
            out[:, : array.shape[1]] = torch.from_numpy(array).long()
            return out.to(device)

        def column(array) -> Tensor | None:
            return None if array is None else torch.from_numpy(array).long().to(device)

        return cls(
            tokens=padded(split.tokens, 0),
            positions=column(split.answer_positions),
            answers=column(split.answers),
            targets=None if split.targets is None else padded(split.targets, NO_TARGET),
            output_start=column(split.output_start),
            linear=column(split.fields.get("linear_answer")) if split.is_sequence else None,
        )

    def __len__(self) -> int:
        return len(self.answers)

    def rows(self, idx: Tensor | slice) -> DeviceSplit:
        return DeviceSplit(*(None if t is None else t[idx] for t in (getattr(self, f.name) for f in fields(self))))

    @classmethod
    def cat(cls, parts: list[DeviceSplit]) -> DeviceSplit:
        def joined(name: str) -> Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else torch.cat(values)

        return cls(*(joined(f.name) for f in fields(cls)))


LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits [N, vocab], targets [N]) -> mean loss


def answer_loss(logits: Tensor, answers: Tensor, label_smoothing: float = 0.0) -> Tensor:
    # float64 log-softmax: float32 saturates near zero loss and makes late-training spikes (Nanda et al. 2023)
    return F.cross_entropy(logits.double(), answers, label_smoothing=label_smoothing)


def label_smoothed(loss: LossFn, label_smoothing: float) -> LossFn:
    """The training loss with train.label_smoothing ε: (1 − ε)·CE(answer) + ε·mean over the vocabulary of
    CE(token), i.e. cross-entropy against (1 − ε)·one-hot + ε/vocab (torch's definition). Only the softmax loss
    has it (TrainConfig.validate refuses ε > 0 with another loss); probes' losses stay plain cross-entropy."""
    if not label_smoothing:
        return loss
    if loss is not answer_loss:
        raise ValueError("label smoothing is implemented for the softmax cross-entropy (metrics.answer_loss) only")
    return partial(answer_loss, label_smoothing=label_smoothing)


def training_loss(model: Transformer, batch: DeviceSplit, autocast, loss: LossFn = answer_loss) -> Tensor:
    """Answer tasks: `loss` (cross-entropy by default; train.loss, accelerators.LOSSES) of the answer (logits
    computed only there). Sequence tasks: its mean over every next-token target (a language model's loss)."""
    if batch.targets is None:
        with autocast:
            logits = model(batch.tokens, batch.positions)
        return loss(logits, batch.answers)
    with autocast:
        logits = model(batch.tokens)
    scored = batch.targets != NO_TARGET
    return loss(logits[scored], batch.targets[scored])


def sequence_scores(logits: Tensor, chunk: DeviceSplit) -> dict[str, Tensor]:
    """Per-row scores of a sequence task from full-sequence logits [N, L, vocab]. Exact match under teacher
    forcing equals exact match of greedy decoding: greedy reproduces the output iff every next-token argmax
    given the true prefix is right."""
    rows = torch.arange(len(chunk), device=logits.device)
    predicted = logits.argmax(-1)
    position = torch.arange(logits.shape[1], device=logits.device)[None, :]
    scored = (position >= chunk.output_start[:, None]) & (chunk.targets != NO_TARGET)
    token_loss = F.cross_entropy(logits.double().transpose(1, 2), chunk.targets.clamp(min=0), reduction="none")
    decisive = predicted[rows, chunk.positions]
    differs = chunk.linear != ABSENT
    return {
        "acc": (decisive == chunk.answers).double(),
        "exact": ((predicted == chunk.targets) | ~scored).all(1).double(),
        "loss": (token_loss * scored).sum(1) / scored.sum(1).clamp(min=1),
        "linear": ((decisive == chunk.linear) & differs).double(),
        "linear_rows": differs.double(),
    }


def answer_scores(logits: Tensor, chunk: DeviceSplit) -> dict[str, Tensor]:
    return {
        "acc": (logits.argmax(-1) == chunk.answers).double(),
        "loss": F.cross_entropy(logits.double(), chunk.answers, reduction="none"),
    }


class ProbeEvaluator:
    """Evaluates all probes at once: they are concatenated into one tensor, run in large chunks, and
    reduced per probe on the device, with a single host transfer at the end. Probes with row groups (the task's
    breakdowns, e.g. comparison's labels and value gaps) also get `<probe>/acc_<group>`."""

    def __init__(self, data: TaskData, n_ctx: int, device: torch.device, batch_size: int) -> None:
        self.names = list(data.probes)
        parts = [DeviceSplit.from_split(data.probes[n], n_ctx, device) for n in self.names]
        self.all = DeviceSplit.cat(parts)
        self.sequence = self.all.targets is not None
        sizes = torch.tensor([len(p) for p in parts])
        self.probe_of_row = torch.repeat_interleave(torch.arange(len(parts)), sizes).to(device)
        self.batch_size = batch_size
        self.group_keys, self.group_rows, self.group_of_row = self._groups(data, sizes, device)
        self.group_sizes = torch.bincount(self.group_of_row, minlength=len(self.group_keys)).double()

    def _groups(self, data: TaskData, sizes: Tensor, device: torch.device) -> tuple[list[str], Tensor, Tensor]:
        """Metric keys of the breakdown groups, and (row in `all`, group number) pairs for one index_add."""
        offsets = dict(zip(self.names, (torch.cumsum(sizes, 0) - sizes).tolist(), strict=True))
        keys, rows, group = [], [], []
        from groklab.tasks import probe_breakdowns  # the task registry imports every task: only when needed

        for probe, groups in probe_breakdowns(data).items():
            for name, mask in groups.items():
                members = torch.from_numpy(mask.nonzero()[0]) + offsets[probe]
                rows.append(members)
                group.append(torch.full_like(members, len(keys)))
                keys.append(f"{probe}/acc_{name}")
        empty = torch.zeros(0, dtype=torch.long)
        cat = lambda parts: torch.cat(parts).to(device) if parts else empty.to(device)  # noqa: E731
        return keys, cat(rows), cat(group)

    @torch.no_grad()
    def __call__(self, model: Transformer, autocast: torch.autocast) -> dict[str, float]:
        was_training = model.training
        model.eval()
        chunks: list[dict[str, Tensor]] = []
        for start in range(0, len(self.all), self.batch_size):
            chunk = self.all.rows(slice(start, start + self.batch_size))
            with autocast:
                logits = model(chunk.tokens) if self.sequence else model(chunk.tokens, chunk.positions)
            chunks.append((sequence_scores if self.sequence else answer_scores)(logits.float(), chunk))
        model.train(was_training)
        scores = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
        groups = self._per_group(scores["acc"])
        return self._per_probe(scores) | groups

    def _per_group(self, acc: Tensor) -> dict[str, float]:
        if not self.group_keys:
            return {}
        total = torch.zeros(len(self.group_keys), dtype=torch.double, device=acc.device)
        total.index_add_(0, self.group_of_row, acc[self.group_rows])
        return dict(zip(self.group_keys, (total / self.group_sizes).tolist(), strict=True))

    def _per_probe(self, scores: dict[str, Tensor]) -> dict[str, float]:
        """Means per probe (one host transfer); `linear` is averaged over the rows where the rules differ and
        left out for probes without such rows."""
        n = len(self.names)
        denominators = {"linear": scores.pop("linear_rows", None)}
        means = {}
        for key, values in scores.items():
            total = torch.zeros(n, dtype=torch.double, device=values.device).index_add_(0, self.probe_of_row, values)
            weight = denominators.get(key)
            if weight is None:
                weight = torch.ones_like(values)
            count = torch.zeros_like(total).index_add_(0, self.probe_of_row, weight)
            means[key] = torch.where(count > 0, total / count.clamp(min=1), torch.nan).tolist()
        out = {}
        for i, name in enumerate(self.names):
            out |= {f"{name}/{key}": values[i] for key, values in means.items() if values[i] == values[i]}
        return out
