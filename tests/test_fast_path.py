"""The training fast path equals the plain path, and the FLOP count behind the MFU numbers is right.

Fast path: `Transformer.forward(tokens, positions)`: the last layer only at the answer position
(`Block.forward_answer`), and `broadcast_attention` on a CPU for short sequences. Plain path: the full
forward at every position with attention through `F.scaled_dot_product_attention`, logits then taken at the
answer positions. Same batch, same loss and the same gradient for every parameter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import groklab.model
from groklab import train
from groklab.config import ModelConfig
from groklab.metrics import answer_loss
from groklab.model import Transformer

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # benchmarks/ holds scripts, not a package
from flops import forward_flops, step_flops  # noqa: E402

D_VOCAB, N_CTX, BATCH = 30, 6, 16
CONFIGS = {
    "default": {},
    "shared": {"n_layers": 2, "loops": 2},
    "normed": {"residual": "normed", "init": "torch"},
}


def make(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**({"n_layers": 3, "d_model": 32, "n_heads": 4, "d_mlp": 64} | kw)), D_VOCAB, N_CTX)


def batch(ragged: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens right-padded with 0 after each row's length, the answer positions (length - 1), the answers."""
    gen = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, N_CTX + 1, (BATCH,), generator=gen) if ragged else torch.full((BATCH,), N_CTX)
    tokens = torch.randint(1, D_VOCAB, (BATCH, N_CTX), generator=gen)
    tokens[torch.arange(N_CTX)[None] >= lengths[:, None]] = 0
    return tokens, lengths - 1, torch.randint(0, D_VOCAB, (BATCH,), generator=gen)


def loss_and_grads(model: Transformer, loss: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def fast(model: Transformer, tokens, positions, answers):
    return loss_and_grads(model, answer_loss(model(tokens, positions), answers))


def plain(model: Transformer, tokens, positions, answers, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(groklab.model, "SHORT_SEQUENCE", 0)  # every layer through SDPA
        logits = model(tokens)[torch.arange(len(tokens)), positions]
    return loss_and_grads(model, answer_loss(logits, answers))


def assert_same(a, b) -> None:
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], atol=1e-5, rtol=1e-4, msg=f"gradient of {name}")


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "right-padded"])
@pytest.mark.parametrize("kw", list(CONFIGS.values()), ids=list(CONFIGS))
def test_fast_path_has_plain_loss_and_gradients(kw, ragged, monkeypatch):
    model = make(**kw)
    data = batch(ragged)
    assert_same(fast(model, *data), plain(model, *data, monkeypatch))


def test_fast_path_on_a_real_training_batch(tiny_config, tmp_path, monkeypatch):
    """The batch `Trainer.update` trains on (atomic facts of length 2 padded beside inferred ones of 3)."""
    trainer = train.start(tiny_config(), tmp_path / "run", progress=False)
    b = trainer.train_split.rows(trainer.batches.batch(0))
    assert len(set(b.positions.tolist())) > 1, "the batch should mix answer positions"
    data = (b.tokens, b.positions, b.answers)
    assert_same(fast(trainer.model, *data), plain(trainer.model, *data, monkeypatch))


def test_flop_count_of_a_hand_computed_tiny_model():
    """1 layer, d_model 4, d_mlp 8, 2 positions, 5 tokens. Dense: projections 2·(4·16 + 2·4·8)·2 = 512,
    attention 2·2·2²·4 = 64, unembedding 2·4·5·2 = 80. Answer only: K,V 2·2·16·2 = 128 plus Q, output and MLP
    at one position 2·(2·16 + 2·4·8) = 192; one query 2·2·2·4 = 32; unembedding 2·4·5 = 40."""
    cfg = ModelConfig(n_layers=1, d_model=4, n_heads=1, d_mlp=8)
    assert forward_flops(cfg, 5, 2, answer_only=False) == {"matmul": 512, "attention": 64, "unembed": 80}
    assert forward_flops(cfg, 5, 2, answer_only=True) == {"matmul": 320, "attention": 32, "unembed": 40}
    assert step_flops(cfg, 5, 2, batch=3, answer_only=True) == 3 * 3 * (320 + 32 + 40)


@pytest.mark.parametrize("kw", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("answer_only", [True, False])
def test_flop_count_matches_torch_flop_counter(kw, answer_only):
    """torch's FlopCounterMode counts the matmuls (not broadcast_attention's products) of forward + backward."""
    model = make(**kw)
    tokens, positions, _ = batch(ragged=False)
    with FlopCounterMode(display=False) as counter:
        model(tokens, positions if answer_only else None).sum().backward()
    parts = forward_flops(model.cfg, D_VOCAB, N_CTX, answer_only)
    assert counter.get_total_flops() == 3 * BATCH * (parts["matmul"] + parts["unembed"])


def test_attention_flop_count_matches_sdpa(monkeypatch):
    """Through SDPA's math kernel (plain batched matmuls that FlopCounterMode sees; it does not count the CPU
    flash kernel), the counted forward includes attention over the full T×T grid."""
    monkeypatch.setattr(groklab.model, "SHORT_SEQUENCE", 0)
    model = make()
    tokens, _, _ = batch(ragged=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(tokens)
    assert counter.get_total_flops() == BATCH * sum(forward_flops(model.cfg, D_VOCAB, N_CTX, False).values())
