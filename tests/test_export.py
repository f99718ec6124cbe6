"""Hugging Face / TransformerLens export: the loaded models' logits equal ours at every position of the run's
inputs (default, looped layers, untied embeddings, relu, exact gelu); the tokenizer gives our ids; configs GPT-2
cannot express are refused in one line; the folder is written whole or not at all."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch

from groklab import checkpoint, export, runs, train
from groklab.cli import main
from groklab.errors import UserError
from groklab.model import Transformer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must load without the network

ROWS = 200  # per split: every split's inputs, a few hundred rows, every position


def make_run(cfg, run_dir, steps=(7,)):
    """A run directory whose checkpoints hold random weights of every kind (LayerNorm gains and all biases
    too: at GPT-2 init they are 1 and 0, and a misplaced one would go unnoticed). Returns the models by step."""
    train.start(cfg, run_dir, progress=False)  # writes config.json and meta.json; no training needed
    _, data = runs.open_run(run_dir)
    models = {}
    for step in steps:
        torch.manual_seed(step)
        model = Transformer(cfg.model, len(data.vocab), data.n_ctx).eval()
        with torch.no_grad():
            for param in model.parameters():
                param.copy_(torch.randn_like(param) * 0.5)
        checkpoint.save(run_dir, step, model, {})
        models[step] = model
    return data, models


def run_inputs(data):
    return [torch.as_tensor(split.tokens[:ROWS]) for split in [data.train, *data.probes.values()]]


def assert_same_logits(model, other, data):
    for tokens in run_inputs(data):
        with torch.no_grad():
            ours, theirs = model(tokens), other(tokens)
        theirs = getattr(theirs, "logits", theirs)
        torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["model.n_layers=2", "model.loops=2"],
        ["model.tie_embeddings=false", "model.dropout=0.1"],
        ["model.activation='relu'"],
        ["model.activation='gelu'", "model.init='torch'"],
    ],
    ids=["default", "looped", "untied", "relu", "gelu"],
)
def test_hf_and_transformer_lens_logits_equal_ours(tiny_config, tmp_path, extra):
    from transformer_lens import TransformerBridge
    from transformers import GPT2LMHeadModel

    cfg = tiny_config(*extra)
    data, models = make_run(cfg, tmp_path / "run")
    out = export.export_hf(tmp_path / "run", tmp_path / "hf")

    hf, info = GPT2LMHeadModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    assert hf.config.n_layer == cfg.model.depth and not hf.training  # a looped model unrolled
    # room for the answer token in the context (servers count it); that position's embedding is zeros
    assert hf.config.n_positions == data.n_ctx + 1
    assert not hf.transformer.wpe.weight[data.n_ctx].any()
    assert_same_logits(models[7], hf, data)

    bridge = TransformerBridge.boot_transformers(str(out), device="cpu")
    assert_same_logits(models[7], bridge, data)
    # TransformerLens' residual hook names are ours, indexed by depth (every loop too)
    tokens, seen = run_inputs(data)[0], {}
    names = [f"blocks.{depth}.hook_resid_post" for depth in range(cfg.model.depth)]
    with torch.no_grad():
        models[7](tokens, hooks={name: lambda x, name: seen.__setitem__(name, x) for name in names})
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda name: name in names)
    for name in names:
        torch.testing.assert_close(cache[name], seen[name], rtol=1e-4, atol=1e-4)
    if cfg.model.loops > 1:  # the block's layers are written once per loop
        torch.testing.assert_close(hf.transformer.h[0].mlp.c_fc.weight, hf.transformer.h[2].mlp.c_fc.weight)
        assert hf.transformer.h[0].mlp.c_fc.weight.data_ptr() != hf.transformer.h[2].mlp.c_fc.weight.data_ptr()


def test_tokenizer_gives_our_ids(tiny_config, tmp_path):
    from transformer_lens import TransformerBridge
    from transformers import AutoTokenizer

    data, _ = make_run(tiny_config(), tmp_path / "run")
    out = export.export_hf(tmp_path / "run", tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(out)
    rows = data.probes["test_inferred_id"]
    for tokens, length in zip(rows.tokens[:20], rows.lengths[:20], strict=True):
        ids = tokens[:length].tolist()
        words = [data.vocab.tokens[i] for i in ids]
        assert tok(" ".join(words))["input_ids"] == ids
        assert tok("".join(words))["input_ids"] == ids  # the paper's files write tokens without spaces
    assert len(tok) == len(data.vocab) and tok.pad_token_id == 0
    bridge = TransformerBridge.boot_transformers(str(out), device="cpu")
    text = " ".join(data.vocab.tokens[i] for i in ids)
    assert bridge.to_tokens(text, prepend_bos=False)[0].tolist() == ids
    assert len(bridge.tokenizer) == len(data.vocab)  # TransformerLens added no token beyond the model's vocabulary


def test_normed_residual_is_refused_in_one_line(tiny_config, tmp_path, capsys):
    make_run(tiny_config("model.residual='normed'"), tmp_path / "run")
    code = main(["export", str(tmp_path / "run"), "--format", "hf", "--out", str(tmp_path / "hf")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "model.residual='normed' has no GPT-2 equivalent" in err and "pre_ln" in err
    assert not (tmp_path / "hf").exists()


def test_cli_export_steps_and_refusals(tiny_config, tmp_path, capsys):
    from transformers import GPT2LMHeadModel

    data, models = make_run(tiny_config(), tmp_path / "run", steps=(3, 9))
    run, out = str(tmp_path / "run"), tmp_path / "hf"
    out.mkdir()  # an empty folder may be reused
    assert main(["export", run, "--format", "hf", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads((out / "groklab.json").read_text())["step"] == 9  # the newest by default
    assert_same_logits(models[9], GPT2LMHeadModel.from_pretrained(out), data)

    assert main(["export", run, "--out", str(tmp_path / "hf3"), "--step", "3"]) == 0
    assert_same_logits(models[3], GPT2LMHeadModel.from_pretrained(tmp_path / "hf3"), data)
    capsys.readouterr()  # transformers' loading progress bars

    for args, needle in [
        (["--out", str(out)], "exists and is not empty"),
        (["--out", str(tmp_path / "x"), "--step", "5"], "no checkpoint at step 5; choose --step from [3, 9]"),
        (["--out", str(tmp_path / "x"), "--format", "onnx"], "invalid choice"),
    ]:
        assert main(["export", run, *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x").exists()
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_a_failed_export_leaves_nothing(tiny_config, tmp_path, monkeypatch):
    make_run(tiny_config(), tmp_path / "run")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "save_file", fail)
    with pytest.raises(OSError):
        export.export_hf(tmp_path / "run", tmp_path / "out" / "hf")
    assert list((tmp_path / "out").iterdir()) == []  # neither the folder nor its temp folder


def test_missing_transformers_names_the_extra(tiny_config, tmp_path, monkeypatch):
    make_run(tiny_config(), tmp_path / "run")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(UserError, match=r"pip install 'groklab\[hf\]'"):
        export.export_hf(tmp_path / "run", tmp_path / "hf")


def test_guide_export_example_runs(tiny_config, tmp_path, monkeypatch):
    """The guide's export command and Python snippet run as written (on a tiny run in place of runs/phi9)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "guide.md").read_text()
    section = text.split("## Export to Hugging Face / TransformerLens")[1].split("\n## ")[0]
    command = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    make_run(tiny_config(), tmp_path / "runs" / "phi9")
    assert main(shlex.split(command, comments=True)[1:]) == 0
    scope: dict = {}
    exec(snippet, scope)
    assert scope["logits"].shape[:2] == (1, 3) and "blocks.0.hook_resid_post" in scope["cache"]
