"""Task data as tensors on the device, and evaluation of every probe in one batched pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from groklab.model import Transformer
from groklab.tasks.dataset import Split, TaskData


@dataclass
class DeviceSplit:
    """A split on the device: inputs, the position where the answer is predicted, and the answer."""

    tokens: Tensor  # [N, L] int64
    positions: Tensor  # [N] int64: last real input position
    answers: Tensor  # [N] int64

    @classmethod
    def from_split(cls, split: Split, n_ctx: int, device: torch.device) -> DeviceSplit:
        tokens = torch.zeros((len(split), n_ctx), dtype=torch.long)
        tokens[:, : split.tokens.shape[1]] = torch.from_numpy(split.tokens).long()
        return cls(
            tokens=tokens.to(device),
            positions=torch.from_numpy(split.lengths).long().sub(1).to(device),
            answers=torch.from_numpy(split.answers).long().to(device),
        )

    def __len__(self) -> int:
        return len(self.answers)

    def rows(self, idx: Tensor | slice) -> DeviceSplit:
        return DeviceSplit(self.tokens[idx], self.positions[idx], self.answers[idx])


def answer_loss(logits: Tensor, answers: Tensor) -> Tensor:
    # float64 log-softmax: float32 saturates near zero loss and makes late-training spikes (Nanda et al. 2023)
    return F.cross_entropy(logits.double(), answers)


class ProbeEvaluator:
    """Evaluates all probes at once: they are concatenated into one tensor, run in large chunks, and
    reduced per probe on the device, with a single host transfer at the end."""

    def __init__(self, data: TaskData, n_ctx: int, device: torch.device, batch_size: int) -> None:
        self.names = list(data.probes)
        parts = [DeviceSplit.from_split(data.probes[n], n_ctx, device) for n in self.names]
        self.all = DeviceSplit(
            torch.cat([p.tokens for p in parts]),
            torch.cat([p.positions for p in parts]),
            torch.cat([p.answers for p in parts]),
        )
        sizes = torch.tensor([len(p) for p in parts])
        self.probe_of_row = torch.repeat_interleave(torch.arange(len(parts)), sizes).to(device)
        self.sizes = sizes.to(device).double().clamp(min=1)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, model: Transformer, autocast: torch.autocast) -> dict[str, float]:
        was_training = model.training
        model.eval()
        correct, losses = [], []
        for start in range(0, len(self.all), self.batch_size):
            chunk = self.all.rows(slice(start, start + self.batch_size))
            with autocast:
                logits = model(chunk.tokens, chunk.positions)
            correct.append((logits.argmax(-1) == chunk.answers).double())
            losses.append(F.cross_entropy(logits.double(), chunk.answers, reduction="none"))
        model.train(was_training)
        n = len(self.names)
        acc = torch.zeros(n, dtype=torch.double, device=self.sizes.device)
        loss = torch.zeros_like(acc)
        acc.index_add_(0, self.probe_of_row, torch.cat(correct))
        loss.index_add_(0, self.probe_of_row, torch.cat(losses))
        acc, loss = (acc / self.sizes).tolist(), (loss / self.sizes).tolist()
        out = {f"{name}/acc": acc[i] for i, name in enumerate(self.names)}
        out |= {f"{name}/loss": loss[i] for i, name in enumerate(self.names)}
        return out
