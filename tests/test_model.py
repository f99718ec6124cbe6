"""Model shapes, parameter sharing, hooks and the paper's AdamW groups."""

import pytest
import torch

from groklab.config import ModelConfig
from groklab.errors import UserError
from groklab.model import Transformer, param_groups


def make(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**({"n_layers": 4, "d_model": 32, "n_heads": 4, "d_mlp": 64} | kw)), 50, 4)


def test_shapes_full_and_answer_position():
    model = make()
    tokens = torch.randint(1, 50, (6, 4))
    assert model(tokens).shape == (6, 4, 50)
    positions = torch.tensor([1, 2, 3, 0, 1, 2])
    picked = model(tokens, positions)
    assert picked.shape == (6, 50)
    torch.testing.assert_close(picked, model(tokens)[torch.arange(6), positions])


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"init": "torch", "residual": "normed", "activation": "gelu"},
        {"n_layers": 2, "loops": 2, "activation": "relu"},
        {"n_layers": 1},
        {"n_layers": 1, "loops": 3, "inject_input": True},
        {"n_layers": 2, "loops": 2, "inject_input": True},
    ],
)
def test_answer_only_last_layer_equals_full_forward(kw):
    """The fast path (last layer computed at the answer position only) gives the full forward's logits,
    also with gradients, and so does the hooked path (hooks force the full forward)."""
    model = make(**kw).double()
    tokens = torch.randint(1, 50, (8, 4))
    positions = torch.tensor([3, 2, 1, 0, 3, 3, 2, 1])
    fast = model(tokens, positions)
    full = model(tokens)[torch.arange(8), positions]
    torch.testing.assert_close(fast, full)
    hooked = model(tokens, positions, hooks={"hook_embed": lambda x, name: None})
    torch.testing.assert_close(hooked, full)
    g_fast = torch.autograd.grad(fast.square().sum(), list(model.parameters()), allow_unused=True)
    g_full = torch.autograd.grad(full.square().sum(), list(model.parameters()), allow_unused=True)
    for a, b in zip(g_fast, g_full, strict=True):
        torch.testing.assert_close(a, b)


def test_right_padding_does_not_change_earlier_positions():
    model = make()
    a = torch.tensor([[3, 4, 5, 0]])
    b = torch.tensor([[3, 4, 5, 9]])
    torch.testing.assert_close(model(a)[:, :3], model(b)[:, :3])


def test_shared_blocks_share_storage_and_repeat():
    model = make(n_layers=4, loops=2)
    assert len(model.blocks) == 4
    for depth in range(8):
        assert model.block_at(depth) is model.blocks[depth % 4]
    assert model.block_at(1).attn.qkv.weight.data_ptr() == model.block_at(5).attn.qkv.weight.data_ptr()
    unshared = make(n_layers=8)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < sum(p.numel() for p in unshared.parameters())


def test_tied_embeddings_share_storage():
    model = make()
    assert model.unembed.weight.data_ptr() == model.embed.weight.data_ptr()
    untied = make(tie_embeddings=False)
    assert untied.unembed.weight.data_ptr() != untied.embed.weight.data_ptr()


def test_hooks_cache_every_depth_and_patch_replaces():
    model = make(n_layers=4, loops=2)
    tokens = torch.randint(1, 50, (2, 4))
    cache = {}
    hooks = {name: (lambda x, n: cache.__setitem__(n, x)) for name in model.hook_names()}
    logits = model(tokens, hooks=hooks)
    assert len(cache) == len(model.hook_names())
    assert cache["blocks.7.hook_resid_post"].shape == (2, 4, 32)
    torch.testing.assert_close(logits, model.unembed(model.ln_final(cache["blocks.7.hook_resid_post"])))
    # patching a state with itself changes nothing; patching with zeros does
    same = {"blocks.3.hook_resid_post": lambda x, n: cache[n]}
    torch.testing.assert_close(model(tokens, hooks=same), logits)
    zero = {"blocks.3.hook_resid_post": lambda x, n: torch.zeros_like(x)}
    assert not torch.allclose(model(tokens, hooks=zero), logits)


def test_param_groups_skip_norms_and_biases():
    model = make()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("ln" not in names[id(p)] and not names[id(p)].endswith("bias") for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {
        "ln_final.weight",
        "blocks.0.ln1.weight",
        "blocks.0.attn.qkv.bias",
    }
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"d_model": 130, "n_heads": 4}, "not divisible"), ({"loops": 0}, "model.loops=0 must be >= 1")],
)
def test_invalid_model_config(kw, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(**kw).validate()


def test_patching_clean_into_clean_changes_nothing():
    from groklab.hooks import resid_name, run_with_cache, run_with_patches

    model = make(n_layers=4)
    tokens = torch.randint(1, 50, (5, 4))
    logits, cache = run_with_cache(model, tokens)
    for i in range(model.cfg.depth + 1):
        name = resid_name(i)
        same = run_with_patches(model, tokens, {name: (1, cache[name][:, 1])})
        torch.testing.assert_close(same, logits)
    other = torch.randint(1, 50, (5, 4))
    _, other_cache = run_with_cache(model, other)
    changed = run_with_patches(model, tokens, {resid_name(2): (3, other_cache[resid_name(2)][:, 3])})
    assert not torch.allclose(changed[:, 3], logits[:, 3])
    torch.testing.assert_close(changed[:, :3], logits[:, :3])  # causal: earlier positions untouched


def test_short_sequence_attention_equals_sdpa(monkeypatch):
    """The CPU broadcast attention for short sequences matches PyTorch's scaled_dot_product_attention."""
    import groklab.model as model_module

    model = make(residual="normed").double()
    tokens = torch.randint(1, 50, (5, 4))
    short = model(tokens)
    monkeypatch.setattr(model_module, "SHORT_SEQUENCE", 0)
    torch.testing.assert_close(short, model(tokens))
