"""Grokfast filters against hand-computed values, LR schedule, log-spaced schedule, grok detection."""

import pytest
import torch
from torch import nn

from groklab.accelerators import make_filter
from groklab.config import FilterConfig, TrainConfig
from groklab.errors import UserError
from groklab.grokking import detect_grokking
from groklab.optim import lr_factor
from groklab.schedule import log_spaced_steps


def one_param() -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    return model


def run_filter(cfg: FilterConfig, grads: list[float]) -> list[float]:
    model = one_param()
    filt = make_filter(model, cfg)
    out = []
    for g in grads:
        model.weight.grad = torch.tensor([[g]])
        filt()
        out.append(model.weight.grad.item())
    return out


def test_ema_matches_hand_computation():
    # μ0 = g0 → out0 = g0 + λ g0; μ1 = α μ0 + (1−α) g1 = 2 → out1 = g1 + λ μ1; μ2 = 0.5·2 + 0.5·(−1) = 0.5
    out = run_filter(FilterConfig(kind="ema", alpha=0.5, amplify=2.0), [1.0, 3.0, -1.0])
    assert out == pytest.approx([3.0, 3.0 + 2.0 * 2.0, -1.0 + 2.0 * 0.5])


def test_ema_lambda_zero_is_identity():
    grads = [0.3, -1.0, 2.5, 0.1]
    assert run_filter(FilterConfig(kind="ema", alpha=0.9, amplify=0.0), grads) == pytest.approx(grads)


def test_ma_warmup_then_window_mean_and_sum():
    grads = [1.0, 2.0, 3.0, 4.0]
    mean = run_filter(FilterConfig(kind="ma", window=2, amplify=1.0, warmup=True), grads)
    assert mean == pytest.approx([1.0, 2.0 + 1.5, 3.0 + 2.5, 4.0 + 3.5])
    total = run_filter(FilterConfig(kind="ma", window=2, amplify=1.0, reduce="sum"), grads)
    assert total == pytest.approx([1.0, 2.0 + 3.0, 3.0 + 5.0, 4.0 + 7.0])
    no_warm = run_filter(FilterConfig(kind="ma", window=3, amplify=1.0, warmup=False), grads)
    assert no_warm == pytest.approx([2.0, 2.0 + 1.5, 3.0 + 2.0, 4.0 + 3.0])


def test_ma_running_sum_equals_explicit_window_mean():
    """The O(1) running sum gives the same filtered gradients as re-averaging the last w gradients."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(40)]
    model = nn.Linear(4, 3, bias=False).double()
    filt = make_filter(model, FilterConfig(kind="ma", window=7, amplify=5.0))
    for t, g in enumerate(grads):
        model.weight.grad = g.clone()
        filt()
        window = grads[max(0, t - 6) : t + 1]
        expected = g + 5.0 * torch.stack(window).mean(0) if len(window) == 7 else g
        torch.testing.assert_close(model.weight.grad, expected)


def test_filter_skips_params_without_grad_and_state_round_trips():
    model = nn.Linear(2, 2)
    filt = make_filter(model, FilterConfig(kind="ma", window=3))
    model.weight.grad = torch.ones(2, 2)
    filt()  # bias has no grad: skipped, no state
    state = filt.state_dict()
    assert set(state) == {"ring.weight", "total.weight", "count.weight"}
    other = make_filter(model, FilterConfig(kind="ma", window=3))
    other.load_state_dict(state)
    for _ in range(3):
        model.weight.grad = torch.full((2, 2), 2.0)
        filt()
        a = model.weight.grad.clone()
        model.weight.grad = torch.full((2, 2), 2.0)
        other()
        torch.testing.assert_close(model.weight.grad, a)


def test_lr_warmup_then_constant_or_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=110)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == 1.0
    cos = TrainConfig(lr=1.0, warmup_steps=10, steps=110, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(10, cos) == pytest.approx(1.0)
    assert lr_factor(60, cos) == pytest.approx(0.55)
    assert lr_factor(110, cos) == pytest.approx(0.1)


def test_cosine_with_decay_steps_reaches_the_floor_early_and_stays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=1000, schedule="cosine", min_lr_ratio=0.3, decay_steps=110)
    assert lr_factor(60, cfg) == pytest.approx(0.65)  # halfway through the decay
    assert lr_factor(110, cfg) == pytest.approx(0.3)
    assert lr_factor(999, cfg) == pytest.approx(0.3)  # the floor holds to the run's end
    assert lr_factor(60, TrainConfig(lr=1.0, warmup_steps=10, steps=110, schedule="cosine", min_lr_ratio=0.3)) == (
        pytest.approx(lr_factor(60, cfg))
    )  # decay_steps = steps is the plain cosine


def test_warmup_from_zero_gives_the_first_update_lr_0_like_lambdalr():
    """Grokfast's code: LambdaLR(lambda update: 1 if update > 10 else update / 10) — update 0 has lr 0."""
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=100, warmup_from_zero=True)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.LambdaLR(opt, lambda update: 1 if update > 10 else update / 10)
    for step in range(15):
        assert lr_factor(step, cfg) == pytest.approx(reference.get_last_lr()[0]), step
        opt.step()
        reference.step()
    assert lr_factor(0, TrainConfig(warmup_steps=10)) == pytest.approx(0.1)  # default: no update at lr 0


def test_first_update_at_lr_0_leaves_the_weights_but_feeds_adam_and_the_filter():
    from groklab.optim import make_optimizer

    cfg = TrainConfig(optimizer="adam", decay_all=True, weight_decay=0.005, warmup_steps=10, warmup_from_zero=True)
    model = nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt, filt = make_optimizer(model, cfg), make_filter(model, FilterConfig(kind="ema"))
    for group in opt.param_groups:
        group["lr"] = cfg.lr * lr_factor(0, cfg)
    model(torch.ones(4, 3)).square().sum().backward()
    filt()
    opt.step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), p0, rtol=0, atol=0)
        assert opt.state[p]["exp_avg_sq"].abs().sum() > 0
    assert filt.state_dict()


def test_log_spaced_steps_dense_early_sparse_late():
    steps = log_spaced_steps(100_000, 50)
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 100_000
    assert steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert gaps[-1] > 100 * gaps[1]


def test_log_spaced_steps_from_a_later_start():
    steps = log_spaced_steps(5_000, 60, start=100)
    assert steps[0] == 0 and steps[1] == 100 and steps[-1] == 5_000
    assert len(steps) == 61  # no collisions: every point is a distinct step
    ratios = [b / a for a, b in zip(steps[1:], steps[2:], strict=False)]
    assert max(ratios) < 1.08 and min(ratios) > 1.05  # evenly log-spaced, ~6.9% apart
    assert log_spaced_steps(50, 10, start=100) == [0, 50]  # a start past the end keeps only the end
    assert len(log_spaced_steps(5_000, 120)) < 100  # from step 1, points collide in the first decades


def test_eval_start_sets_the_trainer_schedule():
    from groklab import config
    from groklab.train import schedules

    evals, ckpts = schedules(config.TrainConfig(steps=1_000, eval_points=20, eval_start=50, ckpt_points=4))
    assert min(evals - {0}) == 50 and max(evals) == 1_000 and ckpts <= evals
    with pytest.raises(UserError, match="eval_start"):
        config.TrainConfig(eval_start=0).validate()


def test_detect_grokking():
    rows = [
        {"step": s, "tr": a, "te": b}
        for s, a, b in [(0, 0, 0), (10, 0.96, 0.1), (20, 0.995, 0.2), (40, 1.0, 0.97)]
    ]
    found = detect_grokking(rows, ["tr"], "te", fit=0.99, grok=0.95)
    assert found["fit_step"] == 20 and found["grok_step"] == 40 and found["grok_over_fit"] == 2.0
    assert found["train_reaches_grok_level_step"] == 10 and found["delay_steps"] == 30
    assert detect_grokking(rows[:2], ["tr"], "te", 0.99, 0.95)["grok_step"] is None


def test_fit_needs_every_training_probe_memorised_at_once():
    """A knowledge-base run has fit only when train_inferred, id_atomic and ood_atomic are all >= the threshold
    at the same evaluation: a model that forgot its OOD atomic facts has not fit (science.md §10)."""
    from groklab.grokking import summarize

    roles = {"train": "tr", "test_id": "te", "atomic_id": "aid", "atomic_ood": "aood"}
    table = [(0, 0, 0, 0, 0), (10, 0.995, 0.99, 0.80, 0.5), (20, 1.0, 1.0, 0.999, 0.6), (30, 1.0, 1.0, 0.97, 0.97)]
    rows = [{"step": s, "tr/acc": a, "aid/acc": b, "aood/acc": c, "te/acc": d} for s, a, b, c, d in table]
    found = summarize(rows, roles, fit=0.99, grok=0.95)
    assert found["fit_probes"] == ["tr", "aid", "aood"] and found["fit_step"] == 20 and found["grok_step"] == 30
    assert found["fit_step_of"] == {"tr": 10, "aid": 10, "aood": 20}
    assert summarize(rows, {"train": "tr", "test_id": "te"}, fit=0.99, grok=0.95)["fit_step"] == 10
    # the delay in epochs, as logged: train probe at the grok level (step 10, epoch 2) → grok (step 30, epoch 6)
    timed = [r | {"epoch": r["step"] / 5} for r in rows]
    assert summarize(timed, roles, fit=0.99, grok=0.95)["delay_epochs"] == 4.0
    assert summarize(timed[:2], roles, fit=0.99, grok=0.95)["delay_epochs"] is None  # never grokked
    # each probe's best evaluation and where it first came: te peaks at 30, aood at 20 then falls
    assert found["best"] == {"tr": 1.0, "aid": 1.0, "aood": 0.999, "te": 0.97}
    assert found["best_step"] == {"tr": 20, "aid": 20, "aood": 20, "te": 30}
    # comparison names its OOD test as the grok probe
    assert summarize(rows, roles | {"grok": "aood"}, fit=0.99, grok=0.95)["grok_step"] == 20


def test_adam_with_l2_on_every_parameter_or_adamw_with_paper_groups():
    from groklab.config import ModelConfig
    from groklab.model import Transformer
    from groklab.optim import make_optimizer

    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32), 10, 4)
    adam = make_optimizer(model, TrainConfig(optimizer="adam", decay_all=True, weight_decay=0.005))
    assert type(adam) is torch.optim.Adam and len(adam.param_groups) == 1
    assert adam.param_groups[0]["weight_decay"] == 0.005
    adamw = make_optimizer(model, TrainConfig(weight_decay=0.1))
    assert type(adamw) is torch.optim.AdamW
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.1, 0.0]  # no decay on LayerNorm and biases


def test_torch_init_has_unit_embeddings_and_gpt2_init_small_ones():
    from groklab.config import ModelConfig
    from groklab.model import Transformer

    big = Transformer(ModelConfig(init="torch", tie_embeddings=False), 500, 4)
    small = Transformer(ModelConfig(), 500, 4)
    assert 0.9 < big.embed.weight.std().item() < 1.1
    assert 0.015 < small.embed.weight.std().item() < 0.025
    assert big.blocks[0].attn.qkv.bias.abs().max() == 0
