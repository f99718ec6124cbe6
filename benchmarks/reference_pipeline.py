"""A reference-style pipeline, built the way the paper's code (Wang et al. 2024, GrokkedTransformer) does it:
a Hugging Face `GPT2LMHeadModel` whose vocabulary is GPT-2's 50,257 tokens plus the task's tokens (added as
new tokens: our id i becomes 50257 + i), batches from a `torch.utils.data.DataLoader`, the loss from the
full-vocabulary logits at every position with labels -100 everywhere but the answer (as the HF Trainer
computes it), `torch.optim.AdamW`, and evaluation by greedy generation of the answer token.

With `offset=0` the same model has only the task's own vocabulary ("own-vocab HF"). The model is built
from a `GPT2Config` directly: nothing is downloaded. Needs `pip install -e '.[bench]'` (transformers).
"""

from __future__ import annotations

import time

import torch
from flops import sync
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from groklab.config import ModelConfig, TrainConfig
from groklab.metrics import DeviceSplit
from groklab.model import param_groups

GPT2_VOCAB = 50_257
GRAD_CLIP = 1.0  # the HF Trainer's default max_grad_norm


def import_gpt2() -> tuple[type, type]:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel, logging
    except ImportError:
        raise SystemExit(
            "the reference pipeline needs Hugging Face transformers: pip install -e '.[bench]' "
            "(or run with --skip-reference)"
        ) from None
    logging.set_verbosity_error()  # e.g. "loss_type=None ... Using the default loss: ForCausalLMLoss"
    return GPT2Config, GPT2LMHeadModel


def gpt2(cfg: ModelConfig, d_vocab: int, n_pos: int, device: torch.device, offset: int) -> torch.nn.Module:
    """GPT-2 at our shape with vocabulary `offset + d_vocab` (our pad id 0 is token `offset`)."""
    GPT2Config, GPT2LMHeadModel = import_gpt2()
    conf = GPT2Config(
        vocab_size=offset + d_vocab,
        n_positions=n_pos,
        n_embd=cfg.d_model,
        n_layer=cfg.depth,
        n_head=cfg.n_heads,
        n_inner=cfg.d_mlp,
        activation_function="gelu_new",
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=offset,
        eos_token_id=offset,
        pad_token_id=offset,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(conf).to(device)


def with_answers(split: DeviceSplit, offset: int) -> tuple[Tensor, Tensor, Tensor]:
    """The paper's training sequences: input then answer, right-padded to n_ctx + 1; labels -100 but at the
    answer (HF shifts labels by one inside the model); all ids shifted by `offset`."""
    rows = torch.arange(len(split), device=split.tokens.device)
    seq = torch.cat([split.tokens, torch.zeros_like(split.tokens[:, :1])], dim=1)
    seq[rows, split.positions + 1] = split.answers
    mask = torch.arange(seq.shape[1], device=seq.device)[None] <= split.positions[:, None] + 1
    labels = torch.full_like(seq, -100)
    labels[rows, split.positions + 1] = split.answers + offset
    return (seq + offset).cpu(), mask.long().cpu(), labels.cpu()


def left_padded(split: DeviceSplit, offset: int) -> tuple[Tensor, Tensor]:
    """Inputs left-padded (batched generation appends after the last column) and their attention mask."""
    n_ctx = split.tokens.shape[1]
    shift = (n_ctx - 1 - split.positions)[:, None]
    source = torch.arange(n_ctx, device=shift.device)[None] - shift
    valid = source >= 0
    tokens = torch.where(valid, split.tokens.gather(1, source.clamp(min=0)), 0)
    return tokens + offset, valid.long()


def endless(loader: DataLoader):
    while True:
        yield from loader


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, autocast, batch: list[Tensor]) -> None:
    """Forward with labels (the loss over full-vocabulary logits) → backward → clip → AdamW."""
    device = next(model.parameters()).device
    ids, mask, labels = (t.to(device) for t in batch)
    with autocast:
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_steps_per_s(model: torch.nn.Module, train: DeviceSplit, tcfg: TrainConfig, autocast, steps: int) -> float:
    """Training steps/s, DataLoader included, after two warm-up steps."""
    data = TensorDataset(*with_answers(train, model.config.pad_token_id))
    batches = endless(DataLoader(data, batch_size=tcfg.batch_size, shuffle=True))
    optimizer = torch.optim.AdamW(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=tcfg.betas)
    model.train()
    for _ in range(2):
        train_step(model, optimizer, autocast, next(batches))
    device = next(model.parameters()).device
    sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, autocast, next(batches))
    sync(device)
    return steps / (time.perf_counter() - tic)


@torch.no_grad()
def generate_accuracy(model: torch.nn.Module, probes: DeviceSplit, batch_size: int, autocast) -> float:
    """Accuracy of greedy generation of one token, in batches, as the paper's evaluation generates answers."""
    model.eval()
    offset = model.config.pad_token_id
    correct = 0
    for start in range(0, len(probes), batch_size):
        chunk = probes.rows(slice(start, start + batch_size))
        ids, mask = left_padded(chunk, offset)
        with autocast:
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False)
        correct += int((out[:, -1] - offset == chunk.answers).sum())
    model.train()
    return correct / len(probes)


def eval_seconds(model: torch.nn.Module, probes: DeviceSplit, batch_size: int, autocast) -> tuple[float, float]:
    """(seconds, accuracy) of generating every probe's answer, after one warm-up batch."""
    generate_accuracy(model, probes.rows(slice(0, batch_size)), batch_size, autocast)
    sync(probes.tokens.device)
    tic = time.perf_counter()
    acc = generate_accuracy(model, probes, batch_size, autocast)
    sync(probes.tokens.device)
    return time.perf_counter() - tic, acc
