"""Looped models (`model.loops`): one block of `n_layers` layers applied `loops` times with shared weights.
Loops share storage; loops = 1 is the plain model; configs written with the old `n_unique_blocks` build the same
parameters and forward pass; input injection acts only between loops; zero-initialised output projections make
every layer the identity; hooks, the logit lens and causal tracing read every loop; the Hugging Face export unrolls
the loops; a looped run resumes bit-exactly. Also the training knobs Kohli et al. use: label smoothing (a closed
form on a hand example) and Adam's ε."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from groklab import checkpoint, config, sweep, sweep_file, train
from groklab.analysis.causal_tracing import causal_tracing, plan_perturbations
from groklab.analysis.logit_lens import decode, logit_lens
from groklab.config import ModelConfig, TrainConfig
from groklab.errors import UserError
from groklab.hooks import resid_name, run_with_cache
from groklab.metrics import DeviceSplit, answer_loss, label_smoothed, training_loss
from groklab.model import INIT_STD, Transformer
from groklab.optim import make_optimizer
from groklab.tasks import generate

REPO = Path(__file__).resolve().parents[1]
D_VOCAB, N_CTX = 50, 5


def make(seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(**({"n_layers": 2, "d_model": 32, "n_heads": 4, "d_mlp": 64} | kw))
    return Transformer(cfg, D_VOCAB, N_CTX).double()


def tokens(n: int = 6) -> torch.Tensor:
    return torch.randint(1, D_VOCAB, (n, N_CTX), generator=torch.Generator().manual_seed(1))


def same_weights(a: Transformer, b: Transformer) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loops_share_storage_and_repeat_the_block():
    looped, plain = make(loops=3), make()
    assert looped.cfg.depth == 6 and len(looped.blocks) == 2
    for depth in range(6):
        assert looped.block_at(depth) is looped.blocks[depth % 2]
    assert looped.block_at(0).mlp.fc.weight.data_ptr() == looped.block_at(4).mlp.fc.weight.data_ptr()
    assert [(n, p.shape) for n, p in looped.named_parameters()] == [(n, p.shape) for n, p in plain.named_parameters()]
    assert len(looped.hook_names()) == 2 + 5 * 6  # every loop has its own hook points


def test_one_loop_is_the_plain_model():
    """loops = 1 (with or without input injection, which only acts between loops) is the model without loops."""
    plain, one, injected = make(), make(loops=1), make(loops=1, inject_input=True)
    x = tokens()
    for other in (one, injected):
        assert same_weights(plain, other)
        torch.testing.assert_close(other(x), plain(x), rtol=0, atol=0)


def test_input_injection_adds_the_embeddings_at_each_loop_after_the_first():
    looped, injected = make(loops=3), make(loops=3, inject_input=True)
    x = tokens()
    assert same_weights(looped, injected)
    assert not torch.allclose(injected(x), looped(x))  # same weights, another forward pass
    _, cache = run_with_cache(injected, x)
    embedded = cache["hook_embed"] + cache["hook_pos_embed"]
    for depth in range(1, injected.cfg.depth):
        before = cache[f"blocks.{depth - 1}.hook_resid_post"]
        added = embedded if depth % injected.cfg.n_layers == 0 else 0
        torch.testing.assert_close(cache[f"blocks.{depth}.hook_resid_pre"], before + added)
    # the answer-only fast path injects too, also when the last loop is a single layer
    for model in (injected, make(n_layers=1, loops=3, inject_input=True)):
        positions = torch.tensor([4, 3, 2, 1, 0, 4])
        torch.testing.assert_close(model(x, positions), model(x)[torch.arange(6), positions])


def test_zero_init_out_makes_every_layer_the_identity():
    model = make(loops=3, zero_init_out=True)
    x = tokens()
    logits, cache = run_with_cache(model, x)
    embedded = cache["hook_embed"] + cache["hook_pos_embed"]
    for depth in range(model.cfg.depth):
        torch.testing.assert_close(cache[f"blocks.{depth}.hook_resid_post"], embedded, rtol=0, atol=0)
    torch.testing.assert_close(logits, decode(model, embedded))
    assert model.blocks[0].attn.qkv.weight.abs().sum() > 0  # only the output projections are zero
    assert not make(loops=3).blocks[0].mlp.proj.weight.eq(0).all()


def test_gpt2_residual_init_scales_with_depth_not_block_size():
    """GPT-2 scales the residual projections by 1/√(2·layers the stream passes): a looped model's depth."""
    model = make(n_layers=4, loops=4, d_model=64)
    std = torch.cat([b.attn.out.weight.flatten() for b in model.blocks]).std().item()
    assert std == pytest.approx(INIT_STD / math.sqrt(2 * 16), rel=0.05)


def reference_shared_forward(model: Transformer, x: torch.Tensor, depth: int, n_unique: int) -> torch.Tensor:
    """The forward pass of the old `n_unique_blocks` model, written out: depth l applies blocks[l % n_unique]."""
    pos = torch.arange(x.shape[1])
    h = model.embed(x) + model.pos_embed(pos)
    for layer in range(depth):
        h = model.blocks[layer % n_unique](h, layer, None)
    return model.unembed(model.ln_final(h))


def committed_shared_configs() -> list[Path]:
    return sorted(p for p in (REPO / "docs" / "runs").rglob("config.json") if "n_unique_blocks" in p.read_text())


def test_committed_n_unique_blocks_configs_build_the_same_model():
    """Every committed run config written with `n_unique_blocks` loads; the model has the parameter names and
    shapes of the old one (blocks.0 .. blocks.{k-1}, so its checkpoints and warm starts stay valid) and computes
    the old forward pass."""
    paths = committed_shared_configs()
    assert any('"n_unique_blocks": 2' in p.read_text() for p in paths)  # docs/runs/sharing-cpu
    built = 0
    for path in paths:
        raw = json.loads(path.read_text())
        depth, k = raw["model"]["n_layers"], raw["model"]["n_unique_blocks"]
        cfg = config.from_dict(raw).model
        assert (cfg.depth, cfg.n_layers, cfg.loops) == (depth, k or depth, depth // (k or depth)), path
        if not k:
            continue
        model = Transformer(cfg, D_VOCAB, N_CTX).double().eval()
        old_names = {f"blocks.{b}.{n}" for b in range(k) for n in dict(model.blocks[0].named_parameters())}
        names = {n for n, _ in model.named_parameters()}
        assert {n for n in names if n.startswith("blocks.")} == old_names
        assert names - old_names <= {"embed.weight", "pos_embed.weight", "ln_final.weight", "ln_final.bias",
                                     "unembed.weight"}
        x = tokens()
        torch.testing.assert_close(model(x), reference_shared_forward(model, x, depth, k))
        built += 1
    assert built >= 5


def test_sharing_sweep_still_names_and_resolves_its_committed_runs():
    """sweeps/sharing-cpu.toml sweeps the old key: its grid points keep their folder names and their configs equal
    the committed runs' (so a re-run of the sweep skips or resumes them instead of refusing them)."""
    points = sweep_file.expand(sweep_file.load("sharing-cpu"))
    committed = REPO / "docs" / "runs" / "sharing-cpu"
    assert {p.name for p in points} == {d.name for d in committed.iterdir() if (d / "config.json").is_file()}
    for p in points:
        sweep.check_same_config(committed / p.name, p.config)  # raises on any difference
    shared = next(p for p in points if p.name == "seed=0,n_unique_blocks=2").config.model
    assert (shared.n_layers, shared.loops) == (2, 2)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"n_layers": 6, "n_unique_blocks": 4}, "model.n_unique_blocks=4 must divide model.n_layers=6"),
        ({"n_layers": 4, "n_unique_blocks": 2, "loops": 2}, "both set sharing"),
        ({"n_unique_blocks": -1}, "must be an int >= 0"),
        ({"loops": 0}, "model.loops=0 must be >= 1"),
    ],
)
def test_bad_sharing_settings_are_one_clear_error(model, message):
    with pytest.raises(UserError, match=message):
        config.from_dict({"data": {"task": "composition"}, "model": model})


def test_old_key_migrates_from_set_too():
    cfg = config.load("demo", ["model.n_layers=4", "model.n_unique_blocks=2"]).model
    assert (cfg.n_layers, cfg.loops, cfg.depth) == (2, 2, 4)
    assert "n_unique_blocks" not in config.load("demo", ["model.n_unique_blocks=0"]).to_dict()["model"]


def test_logit_lens_and_causal_tracing_read_every_loop(tiny_config):
    cfg = tiny_config("model.n_layers=1", "model.loops=3")
    data = generate(cfg.data)
    torch.manual_seed(0)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
    split = data.probes["train_inferred"].take(range(30))
    lens = logit_lens(model, split, "composition", torch.device("cpu"))
    assert all(len(target["mrr"]) == cfg.model.depth + 1 for target in lens.values())
    x, last = torch.as_tensor(split.tokens), torch.as_tensor(split.lengths) - 1
    _, cache = run_with_cache(model, x)
    rows = torch.arange(len(x))
    for i in range(cfg.model.depth + 1):  # row i decodes the state after i layers: states differ between loops
        decoded = decode(model, cache[resid_name(i)][rows, last]).argmax(-1)
        top1 = (decoded == torch.as_tensor(split.answers)).double().mean().item()
        assert lens["answer@last"]["top1"][i] == pytest.approx(top1)
    traced = causal_tracing(model, split, plan_perturbations(data, split), torch.device("cpu"))
    assert len(traced["strength"]) == cfg.model.depth + 1


def test_export_unrolls_the_loops_and_refuses_input_injection(tiny_config, tmp_path):
    pytest.importorskip("transformers")
    from transformers import GPT2LMHeadModel

    from groklab import export
    from tests.test_export import assert_same_logits, make_run

    data, models = make_run(tiny_config("model.n_layers=1", "model.loops=3"), tmp_path / "run")
    hf = GPT2LMHeadModel.from_pretrained(export.export_hf(tmp_path / "run", tmp_path / "hf"))
    assert hf.config.n_layer == 3
    assert_same_logits(models[7], hf, data)
    make_run(tiny_config("model.loops=2", "model.inject_input=true"), tmp_path / "injected")
    with pytest.raises(UserError, match="model.inject_input=true"):
        export.export_hf(tmp_path / "injected", tmp_path / "hf2")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(checkpoint.step_dir(run_dir, checkpoint.list_steps(run_dir)[-1]) / "model.safetensors")


def test_looped_run_resumes_bit_exactly(tiny_config, tmp_path):
    cfg = tiny_config("model.n_layers=1", "model.loops=3", "model.inject_input=true", "train.label_smoothing=0.1",
                      "train.steps=30", "model.d_model=16", "model.d_mlp=32")
    train.start(cfg, tmp_path / "full", progress=False).run()
    train.start(cfg, tmp_path / "cut", progress=False).run()
    cut = tmp_path / "cut"
    steps = checkpoint.list_steps(cut)
    keep = steps[len(steps) // 2]
    for step in steps:
        if step > keep:
            shutil.rmtree(checkpoint.step_dir(cut, step))
    (cut / "summary.json").unlink()
    trainer = train.resume(cut, progress=False)
    assert trainer.step == keep
    trainer.run()
    a, b = final_weights(cut), final_weights(tmp_path / "full")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((cut / "config.json").read_text())["model"]["loops"] == 3


class Fixed(torch.nn.Module):
    """A 'model' whose answer logits are fixed: log(0.1), log(0.2), log(0.3), log(0.4) (softmax = those)."""

    def forward(self, tokens, positions=None):
        return torch.tensor([0.1, 0.2, 0.3, 0.4]).log().expand(len(tokens), 4)


def test_label_smoothing_closed_form():
    """ε-smoothed cross-entropy = (1 − ε)·(−log p_answer) + ε·mean over the vocabulary of −log p_k."""
    batch = DeviceSplit(tokens=torch.zeros(2, 3, dtype=torch.long), positions=torch.tensor([2, 2]),
                        answers=torch.tensor([3, 0]))
    no_autocast = torch.autocast("cpu", enabled=False)
    eps = 0.1
    mean_neg_log = -(math.log(0.1) + math.log(0.2) + math.log(0.3) + math.log(0.4)) / 4
    expected = [(1 - eps) * -math.log(p) + eps * mean_neg_log for p in (0.4, 0.1)]
    loss = training_loss(Fixed(), batch, no_autocast, label_smoothed(answer_loss, eps))
    assert loss.item() == pytest.approx(sum(expected) / 2, rel=1e-9)
    plain = training_loss(Fixed(), batch, no_autocast, label_smoothed(answer_loss, 0.0))
    assert plain.item() == pytest.approx(-(math.log(0.4) + math.log(0.1)) / 2, rel=1e-9)
    assert label_smoothed(answer_loss, 0.0) is answer_loss


def test_label_smoothing_and_adam_eps_reach_the_run():
    with pytest.raises(UserError, match="train.label_smoothing=0.1 is implemented for train.loss='softmax' only"):
        TrainConfig(label_smoothing=0.1, loss="stablemax").validate()
    with pytest.raises(UserError, match=r"train.label_smoothing=1.0 must be in \[0, 1\)"):
        TrainConfig(label_smoothing=1.0).validate()
    with pytest.raises(UserError, match="train.adam_eps=0.0 must be > 0"):
        TrainConfig(adam_eps=0.0).validate()
    model = make()
    for optimizer in ("adamw", "adam"):
        opt = make_optimizer(model, TrainConfig(optimizer=optimizer, adam_eps=1e-6))
        assert {g["eps"] for g in opt.param_groups} == {1e-6}


@pytest.mark.parametrize("name", ["loop-cpu", "loop-gpu"])
def test_loop_presets(name):
    cfg = config.load(name)
    assert cfg.model.loops == 4 and cfg.train.label_smoothing == 0.1 and not cfg.model.inject_input
    if name == "loop-gpu":  # Kohli et al.'s settings
        assert (cfg.data.n_entities, cfg.data.n_relations, cfg.data.relations_per_entity, cfg.data.phi) == (
            2000, 200, 20, 7.2)
        assert (cfg.model.n_layers, cfg.model.d_model, cfg.train.lr, cfg.train.weight_decay) == (4, 768, 1e-4, 0.1)
    points = sweep_file.expand(sweep_file.load(name))
    arms = {p.overrides["method"]: (p.config.model.n_layers, p.config.model.loops) for p in points}
    block, loops = cfg.model.n_layers, cfg.model.loops
    assert arms == {"looped": (block, loops), "dense-compute": (block * loops, 1), "dense-params": (block, 1)}
