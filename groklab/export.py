"""Export a run's checkpoint as a Hugging Face GPT-2 folder, so other tools can load our models.

    groklab export runs/phi9 --format hf --out exports/phi9            # the newest checkpoint
    groklab export runs/phi9 --format hf --out exports/phi9-1000 --step 1000

The folder holds `model.safetensors` + `config.json` (loads with `GPT2LMHeadModel.from_pretrained(DIR)`, and
with TransformerLens 4's `TransformerBridge.boot_transformers(DIR)`), a word-level tokenizer over the run's own
vocabulary (`tokenizer.json`: one id per token string, ids equal ours) and `groklab.json` (which run and step).
Our model already follows GPT-2's conventions, so the export is a renaming plus transposes: GPT-2 stores its
linear layers as Conv1D, weight [in, out]. A looped model (model.loops > 1) is unrolled: its block's layers are
written once per loop (`depth` GPT-2 layers, weights repeated), since GPT-2 has no parameter sharing; input
injection (model.inject_input) has no GPT-2 equivalent and is refused.

The exported context is one position longer than the run's inputs (`n_positions = n_ctx + 1`): servers such as
`transformers serve` (>= 5.25) count prompt *and* answer against it and refuse a full-length prompt otherwise.
The answer token is never read back, so that extra position embedding (zeros) is never used by any query the
run itself can answer; logits at positions 0..n_ctx-1 are exactly ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from groklab import checkpoint, config, runs
from groklab.errors import UserError
from groklab.model import Transformer
from groklab.tasks.dataset import PAD, Vocab

# ModelConfig.activation -> GPT-2's `activation_function` (transformers' ACT2FN names)
GPT2_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
# Positions the export adds past the run's inputs: room for the answer token, which servers count (see above)
ANSWER_POSITIONS = 1
# One token is `<...>` (the paper's spelling); modular arithmetic's plain tokens are separated by spaces.
TOKEN_PATTERN = r"<[^<>]*>"


def check_exportable(cfg: config.ModelConfig) -> None:
    """Refuse configs GPT-2 cannot express, rather than write a folder whose logits differ from ours."""
    if cfg.residual != "pre_ln":
        raise UserError(
            f"model.residual={cfg.residual!r} has no GPT-2 equivalent (GPT-2's residual stream does not continue "
            "from ln_1(x)), so this run cannot be exported; export a run trained with model.residual='pre_ln' "
            "(the default)"
        )
    if cfg.inject_input and cfg.loops > 1:
        raise UserError(
            "model.inject_input=true re-adds the embeddings at every loop, which GPT-2 cannot express, so this run "
            "cannot be exported; export a run trained with model.inject_input=false (the default)"
        )


def gpt2_config(cfg: config.ModelConfig, d_vocab: int, n_positions: int) -> dict:
    """Keyword arguments of transformers' GPT2Config that reproduce our model's forward pass."""
    return {
        "vocab_size": d_vocab,
        "n_positions": n_positions,
        "n_embd": cfg.d_model,
        "n_layer": cfg.depth,  # the loops unrolled: the block's layers written out once per loop
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "activation_function": GPT2_ACTIVATIONS[cfg.activation],
        "resid_pdrop": cfg.dropout,  # our model applies one dropout rate everywhere GPT-2 has one
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": 1e-5,  # nn.LayerNorm's default, which our model uses
        "tie_word_embeddings": cfg.tie_embeddings,
        # GPT-2's defaults (50256) are outside our vocabulary; our inputs have no BOS/EOS, only right padding
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": 0,
        "architectures": ["GPT2LMHeadModel"],
    }


def gpt2_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under GPT-2's names. Linear weights are transposed (GPT-2's Conv1D is [in, out]); the fused
    qkv keeps its q, k, v order and head split, which GPT-2 shares. Every tensor is its own copy: safetensors
    refuses shared storage, and a shared block appears at several depths. The position table gets
    ANSWER_POSITIONS zero rows (the answer's room in the context; never read by a query the run answers)."""
    answer_room = model.pos_embed.weight.new_zeros(ANSWER_POSITIONS, model.cfg.d_model)
    sd = {
        "transformer.wte.weight": model.embed.weight,
        "transformer.wpe.weight": torch.cat([model.pos_embed.weight, answer_room]),
        "transformer.ln_f.weight": model.ln_final.weight,
        "transformer.ln_f.bias": model.ln_final.bias,
    }
    if not model.cfg.tie_embeddings:
        sd["lm_head.weight"] = model.unembed.weight
    for depth in range(model.cfg.depth):
        block, h = model.block_at(depth), f"transformer.h.{depth}"
        linears = {"attn.c_attn": block.attn.qkv, "attn.c_proj": block.attn.out, "mlp.c_fc": block.mlp.fc}
        linears["mlp.c_proj"] = block.mlp.proj
        for name, linear in linears.items():
            sd[f"{h}.{name}.weight"] = linear.weight.T
            sd[f"{h}.{name}.bias"] = linear.bias
        for name, norm in (("ln_1", block.ln1), ("ln_2", block.ln2)):
            sd[f"{h}.{name}.weight"], sd[f"{h}.{name}.bias"] = norm.weight, norm.bias
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in sd.items()}


def build_tokenizer(vocab: Vocab, n_positions: int):
    """A fast tokenizer whose ids are our token ids: `<e_1><r_3>` or `<e_1> <r_3>` -> [id, id]. Unknown text
    maps to `<pad>` (our vocabulary has no unknown token, and an extra one would be an id the model lacks).
    `<pad>` is also named EOS so that TransformerLens does not add an `<|endoftext|>` beyond the vocabulary."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel(vocab.index(), unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=PAD, eos_token=PAD, model_max_length=n_positions
    )


def require_transformers():
    try:
        import tokenizers  # noqa: F401
        import transformers
    except ImportError:
        raise UserError(
            "export needs the Hugging Face transformers package; install it with pip install 'groklab[hf]'"
        ) from None
    return transformers


def pick_step(run_dir: Path, step: int | None) -> int:
    """`step`, or the newest checkpoint; never touches the run (an export may run beside training)."""
    steps = runs.list_steps(run_dir)
    if not steps:
        raise UserError(f"{run_dir} has no checkpoints in {run_dir / runs.CKPT_DIR}; train it first")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise UserError(f"{run_dir} has no checkpoint at step {step}; choose --step from {steps}")
    return step


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder or delete it first")


def export_hf(run_dir: Path, out: Path, step: int | None = None) -> Path:
    """Write checkpoint `step` (default: the newest) of `run_dir` to the new folder `out`, atomically: it is
    assembled in a temp folder beside `out`, then renamed, so `out` is either whole or absent."""
    transformers = require_transformers()
    check_out(out)
    cfg, data = runs.open_run(run_dir)
    check_exportable(cfg.model)
    step = pick_step(run_dir, step)
    model = Transformer(cfg.model, len(data.vocab), data.n_ctx)
    checkpoint.load(run_dir, step, model)

    n_positions = data.n_ctx + ANSWER_POSITIONS
    with runs.atomic_dir(out) as tmp:
        transformers.GPT2Config(**gpt2_config(cfg.model, len(data.vocab), n_positions)).save_pretrained(tmp)
        save_file(gpt2_state_dict(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(data.vocab, n_positions).save_pretrained(tmp)
        about = {"run_dir": str(run_dir.resolve()), "step": step, "task": data.task, "config": cfg.to_dict()}
        (tmp / "groklab.json").write_text(json.dumps(about, indent=1))
        check_out(out)  # again: someone may have filled it meanwhile
    return out
