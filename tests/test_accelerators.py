"""Grokking accelerators (groklab/accelerators): each method against its formula, the registries against the
config's choices, the diagnostics, exact resume of every method, and one-line errors for bad settings."""

from __future__ import annotations

import shutil
import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from groklab import checkpoint, config, runs, train
from groklab.accelerators import FILTERS, GRAD_TRANSFORMS, LOSSES, diagnostics
from groklab.accelerators.base import GradTransform
from groklab.accelerators.egd import Egalitarian
from groklab.accelerators.orthograd import OrthoGrad
from groklab.accelerators.stablemax import log_stablemax, stablemax_cross_entropy
from groklab.cli import main
from groklab.config import AcceleratorConfig, FilterConfig, ModelConfig, TrainConfig
from groklab.errors import UserError
from groklab.metrics import NO_TARGET, DeviceSplit, training_loss
from groklab.model import Transformer
from groklab.optim import OPTIMIZERS, lr_scale, make_optimizer

METHODS = {  # every switch, alone and with shared blocks where parameters are reused
    "muon": ["train.optimizer=muon"],
    "muon-shared": ["train.optimizer=muon", "model.n_unique_blocks=1"],
    "orthograd": ["train.grad_transform=orthograd", "train.weight_decay=0.0"],
    "egd": ["train.grad_transform=egd"],
    "egd-shared": ["train.grad_transform=egd", "model.n_unique_blocks=1", "filter.kind=ema"],
    "stablemax": ["train.loss=stablemax"],
    "normalize-lr": ["filter.kind=ema", "filter.amplify=2", "filter.normalize_lr=true"],
}


def random_grads(module: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


# --- the methods against their formulas --------------------------------------------------------------------
def test_orthograd_output_is_orthogonal_to_the_weights_and_keeps_the_norm():
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5)).double()
    nn.init.normal_(model[1].weight), nn.init.normal_(model[1].bias)
    nn.init.zeros_(model[0].bias)  # zero weights: no direction to remove
    random_grads(model)
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    OrthoGrad(model, TrainConfig())()
    for name, p in model.named_parameters():
        assert torch.dot(p.grad.flatten(), p.detach().flatten()).abs() <= 1e-12 * p.norm() * p.grad.norm(), name
        torch.testing.assert_close(p.grad.norm(), before[name].norm())
        assert not torch.allclose(p.grad, before[name]) or name == "0.bias", name
    torch.testing.assert_close(model[0].bias.grad, before["0.bias"])


def test_stablemax_equals_the_formula_on_hand_computed_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, -3.0, 1.0]])
    # s = [3, 1, 1/2] → StableMax = [2/3, 2/9, 1/9];  s = [1.5, 1/4, 2] → [2/5, 1/15, 8/15]
    expected = torch.tensor([[2 / 3, 2 / 9, 1 / 9], [2 / 5, 1 / 15, 8 / 15]])
    torch.testing.assert_close(log_stablemax(logits).exp(), expected)
    loss = stablemax_cross_entropy(logits, torch.tensor([0, 1]))
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(-(torch.tensor(2 / 3).log() + torch.tensor(1 / 15).log()).item() / 2)
    assert loss.item() == pytest.approx(F.nll_loss(expected.log(), torch.tensor([0, 1])).item())


def test_stablemax_gradient_is_finite_everywhere_and_argmax_is_the_logits():
    x = torch.tensor([[-2.0, 0.0, 1.0, 3.0]], requires_grad=True)  # x = 1: where 1/(1 − x) would divide by 0
    stablemax_cross_entropy(x, torch.tensor([2])).backward()
    assert torch.isfinite(x.grad).all()
    assert log_stablemax(x).argmax() == x.argmax()


def test_stablemax_keeps_a_gradient_where_float32_softmax_has_collapsed():
    logits = torch.tensor([[120.0, 0.0, -20.0]], requires_grad=True)  # float32: exp(-120) underflows to 0
    answer = torch.tensor([0])
    assert logits.detach().softmax(-1)[0, 0] == 1.0
    F.cross_entropy(logits, answer).backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))  # softmax collapse: nothing left to learn
    for loss in (lambda x: F.nll_loss(log_stablemax(x), answer), lambda x: stablemax_cross_entropy(x, answer)):
        logits.grad = None
        loss(logits).backward()  # float32 and our float64 loss alike
        assert logits.grad.abs().max() > 1e-4


def test_egd_output_has_every_singular_value_one():
    model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3), nn.LayerNorm(3))
    random_grads(model)
    norm_grad = model[2].weight.grad.clone()
    low_rank = torch.randn(7, 1) @ torch.randn(1, 5)  # rank 1: the other directions stay 0, not 1
    model[0].weight.grad = low_rank.clone()
    Egalitarian(model, TrainConfig())()
    torch.testing.assert_close(torch.linalg.svdvals(model[1].weight.grad), torch.ones(3))
    torch.testing.assert_close(torch.linalg.svdvals(model[0].weight.grad), torch.tensor([1.0, 0, 0, 0, 0]))
    u, s, vh = torch.linalg.svd(low_rank)
    torch.testing.assert_close(model[0].weight.grad, u[:, :1] @ vh[:1])  # U Vᵀ of G's own directions
    torch.testing.assert_close(model[2].weight.grad, norm_grad)  # 1-D: untouched
    model[1].weight.grad.zero_()
    Egalitarian(model, TrainConfig())()
    assert torch.equal(model[1].weight.grad, torch.zeros(3, 7))


@pytest.mark.parametrize(("n_unique", "tie"), [(0, True), (2, True), (1, False)])
def test_muon_holds_exactly_the_block_matrices_each_once(n_unique, tie):
    block, loops = (n_unique, 4 // n_unique) if n_unique else (4, 1)
    model = Transformer(ModelConfig(n_layers=block, loops=loops, d_model=16, n_heads=2, d_mlp=32,
                                    tie_embeddings=tie), 10, 4)
    opt = make_optimizer(model, TrainConfig(optimizer="muon"))
    in_muon = [p for g in opt.parts["muon"].param_groups for p in g["params"]]
    in_adamw = [p for g in opt.parts["adamw"].param_groups for p in g["params"]]
    names = {id(p): name for name, p in model.named_parameters()}
    expected = {f"blocks.{b}.{m}.weight" for b in range(n_unique or 4)
                for m in ("attn.qkv", "attn.out", "mlp.fc", "mlp.proj")}
    assert {names[id(p)] for p in in_muon} == expected and len(in_muon) == len(expected)
    everything = in_muon + in_adamw
    assert len({id(p) for p in everything}) == len(everything) == len(list(model.parameters()))
    assert all(p.ndim == 2 for p in in_muon) and "embed.weight" in {names[id(p)] for p in in_adamw}
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3, 0.02]  # AdamW's groups first, then Muon's
    before = {id(p): p.detach().clone() for p in everything}
    model(torch.tensor([[1, 2, 3]])).square().sum().backward()
    opt.step()
    assert all(not torch.equal(p, before[id(p)]) for p in in_muon)


def test_normalize_lr_divides_every_lr_by_one_plus_lambda(tiny_config, tmp_path):
    assert lr_scale(FilterConfig(kind="ema", amplify=2.0, normalize_lr=True)) == pytest.approx(1 / 3)
    assert lr_scale(FilterConfig(kind="ma", amplify=4.0, normalize_lr=True)) == pytest.approx(1 / 5)
    assert lr_scale(FilterConfig(kind="ema", amplify=2.0)) == 1.0  # off by default
    assert lr_scale(FilterConfig(kind="none", amplify=2.0, normalize_lr=True)) == 1.0  # no filter, no gain
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32), 10, 4)
    opt = make_optimizer(model, TrainConfig(lr=0.3, optimizer="muon"), 0.5, AcceleratorConfig(muon_lr=0.1))
    assert [g["lr"] for g in opt.param_groups] == [0.15, 0.15, 0.05]
    switches = ("filter.kind=ema", "filter.amplify=3", "filter.normalize_lr=true", "train.optimizer=muon")
    cfg = tiny_config(*switches, "train.schedule='constant'")
    trainer = train.start(cfg, tmp_path / "run", progress=False)
    trainer.run()
    assert runs.read_metrics(tmp_path / "run")[-1]["lr"] == pytest.approx(cfg.train.lr / 4)  # past warm-up
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-3 / 4] * 2 + [0.02 / 4])


def test_sequence_tasks_use_the_chosen_loss_on_every_target():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, generator=gen)
    targets = torch.tensor([[1, 2, 3, 4], [0, 1, NO_TARGET, NO_TARGET]])
    split = DeviceSplit(tokens=targets.clamp(min=0), positions=torch.tensor([1, 1]), answers=torch.tensor([2, 1]),
                        targets=targets, output_start=torch.tensor([1, 1]))

    class Fixed(nn.Module):
        def forward(self, tokens, positions=None):
            return logits

    loss = training_loss(Fixed(), split, torch.autocast("cpu", enabled=False), LOSSES["stablemax"])
    keep = targets != NO_TARGET
    torch.testing.assert_close(loss, stablemax_cross_entropy(logits[keep], targets[keep]))


# --- registries ---------------------------------------------------------------------------------------------
def choices(cls: type, name: str) -> tuple:
    return typing.get_args(typing.get_type_hints(cls)[name])


@pytest.mark.parametrize(
    ("cls", "field", "table"),
    [(TrainConfig, "grad_transform", GRAD_TRANSFORMS), (TrainConfig, "loss", LOSSES),
     (TrainConfig, "optimizer", OPTIMIZERS), (FilterConfig, "kind", FILTERS)],
    ids=["grad_transform", "loss", "optimizer", "filter"],
)
def test_config_choices_are_the_registries_names(cls, field, table):
    assert choices(cls, field) == tuple(table)
    assert getattr(cls(), field) == next(iter(table))  # the default is the table's first (plain) entry


GRADIENT_METHODS = [(FilterConfig(kind=name), FILTERS[name]) for name in FILTERS] + [
    (TrainConfig(grad_transform=name), GRAD_TRANSFORMS[name]) for name in GRAD_TRANSFORMS
]


@pytest.mark.parametrize(("cfg", "kind"), GRADIENT_METHODS, ids=[f"{c.__class__.__name__}-{k.__name__}"
                                                                   for c, k in GRADIENT_METHODS])
def test_every_gradient_method_keeps_the_one_contract(cfg, kind):
    """Grokfast's filters and the gradient transforms: one base class, built from (model, section), called with
    no arguments, their state restored into a fresh instance gives the same next gradients."""
    assert issubclass(kind, GradTransform)
    if kind is not GradTransform:
        assert kind.__call__ is not GradTransform.__call__ and len(kind.__doc__ or "") > 20
        assert len(typing.cast(str, __import__(kind.__module__, fromlist=["_"]).__doc__)) > 200
    model = nn.Linear(4, 3)
    transform = kind(model, cfg)
    for seed in range(3):
        random_grads(model, seed)
        transform()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    restored = kind(model, cfg)
    restored.load_state_dict({k: v.clone() for k, v in transform.state_dict().items()})  # as from a checkpoint
    random_grads(model, 9)
    transform()
    expected = [p.grad.clone() for p in model.parameters()]
    random_grads(model, 9)
    restored()
    for p, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_is_a_mean_with_a_gradient(name):
    logits = torch.randn(6, 5, requires_grad=True)
    loss = LOSSES[name](logits, torch.arange(6) % 5)
    assert loss.ndim == 0 and loss > 0
    loss.backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_steps_and_its_state_survives_a_checkpoint(name, tmp_path):
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32), 10, 4)
    opt = make_optimizer(model, TrainConfig(optimizer=name))
    model(torch.tensor([[1, 2, 3]])).square().sum().backward()
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "state.pt")
    fresh = make_optimizer(model, TrainConfig(optimizer=name))
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))  # as checkpoint.load does
    assert str(fresh.state_dict()) == str(opt.state_dict())


# --- diagnostics ---------------------------------------------------------------------------------------------
def test_grad_weight_cosine_and_weight_norm_by_hand():
    w = nn.Parameter(torch.tensor([3.0, 0.0]))
    v = nn.Parameter(torch.tensor([[0.0, 4.0]]))
    w.grad, v.grad = torch.tensor([-3.0, 0.0]), torch.tensor([[0.0, -4.0]])  # the gradient only scales w, v up
    assert diagnostics.grad_weight_cosine([w, v]).item() == pytest.approx(-1.0)
    v.grad = torch.tensor([[4.0, 0.0]])  # orthogonal to v: ⟨g, w⟩ = −9, ‖g‖ = 5, ‖w‖ = 5
    assert diagnostics.grad_weight_cosine([w, v]).item() == pytest.approx(-9 / 25)
    assert diagnostics.weight_norm([w, v]) == pytest.approx(5.0)


def test_softmax_collapse_counts_answers_at_probability_exactly_one():
    class Logits(nn.Module):  # row i: the answer's logit is 200 (collapsed in float32) or 5 (not)
        def forward(self, tokens, positions):
            return F.one_hot(tokens[:, 0], 3).float() * torch.where(tokens[:, 1:2] == 1, 200.0, 5.0)

    rows = DeviceSplit(tokens=torch.tensor([[0, 1], [1, 0], [2, 1], [2, 0]]), positions=torch.tensor([1] * 4),
                       answers=torch.tensor([0, 1, 2, 2]))
    assert diagnostics.softmax_collapse(Logits(), rows) == 0.5


def test_diagnostics_are_logged_at_every_evaluation(tiny_config, tmp_path):
    trainer = train.start(tiny_config(), tmp_path / "run", progress=False)
    trainer.run()
    rows = runs.read_metrics(tmp_path / "run")
    assert all({"weights/norm", "train/softmax_collapse"} <= set(r) for r in rows)
    assert "train/grad_weight_cos" not in rows[0]  # step 0: no update yet
    assert all(-1 <= r["train/grad_weight_cos"] <= 1 for r in rows[1:])
    assert all(0 <= r["train/softmax_collapse"] <= 1 for r in rows)
    assert rows[-1]["weights/norm"] == pytest.approx(diagnostics.weight_norm(trainer.params))
    assert len(trainer.collapse_rows) == min(diagnostics.COLLAPSE_ROWS, len(trainer.data.probes["train_inferred"]))


# --- every method resumes exactly ----------------------------------------------------------------------------
def metrics_without_time(run_dir):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(run_dir)]


def final_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(checkpoint.step_dir(run_dir, checkpoint.list_steps(run_dir)[-1]) / "model.safetensors")


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_resumes_bit_exactly(tiny_config, tmp_path, method):
    cfg = tiny_config(*METHODS[method], "train.steps=40")
    full, cut = tmp_path / "full", tmp_path / "cut"
    train.start(cfg, full, progress=False).run()
    train.start(cfg, cut, progress=False).run()
    steps = checkpoint.list_steps(cut)
    keep = steps[len(steps) // 2]
    for step in steps:  # a crash after checkpoint `keep`
        if step > keep:
            shutil.rmtree(checkpoint.step_dir(cut, step))
    (cut / runs.SUMMARY).unlink()
    trainer = train.resume(cut, progress=False)
    assert 0 < trainer.step == keep < cfg.train.steps
    trainer.run()
    assert metrics_without_time(cut) == metrics_without_time(full)
    a, b = final_weights(cut), final_weights(full)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = runs.read_metrics(full)
    assert rows[-1]["train/loss"] < rows[1]["train/loss"]  # and it learns


# --- bad settings -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["accelerator.muon_lr=0"], "accelerator.muon_lr=0.0 must be > 0"),
        (["train.muon_lr=-0.02"], "accelerator.muon_lr=-0.02 must be > 0"),  # its old name reads as the new
        (["accelerator.muon_lr=0.01", "train.muon_lr=0.02"], "train.muon_lr=0.02 and accelerator.muon_lr=0.01 disa"),
        (["accelerator.muon_rate=0.01"], "unknown key accelerator.muon_rate; valid keys in"),
        (["train.grad_transform='sgd'"], "train.grad_transform='sgd' is not one of none, orthograd, egd"),
        (["train.loss='sparsemax'"], "train.loss='sparsemax' is not one of softmax, stablemax"),
        (["train.optimizer='lion'"], "train.optimizer='lion' is not one of adamw, adam, muon"),
        (["filter.normalize_lr=1"], "filter.normalize_lr=1 must be of type bool"),
        (["filter.normalize_lr=true", "filter.amplify=-1"], "filter.normalize_lr divides the lr by 1 + filter.amplify"),
    ],
)
def test_bad_settings_are_one_error_line(overrides, message, capsys, tmp_path, monkeypatch):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("+", r"\+")):
        config.load("demo", overrides)
    monkeypatch.chdir(tmp_path)
    args = ["train", "demo", "--out", str(tmp_path / "X")] + [a for o in overrides for a in ("--set", o)]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "X").exists()
