"""Typed run configuration: frozen dataclasses built from TOML presets plus dotted `--set` overrides.

Unknown keys and wrong types are errors that name the valid keys; nothing is silently ignored.
The `[data]` table is the chosen task's own config class (`groklab.tasks.TASKS[task].config`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groklab.errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only GPT-2-style transformer (Wang et al. §5 preset: 8 layers, 768 wide, 12 heads)."""

    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    n_unique_blocks: int = 0  # parameter sharing (App. E.2): 0 = no sharing; else block l is blocks[l % n]
    tie_embeddings: bool = True
    dropout: float = 0.0
    # gpt2: N(0, 0.02) with scaled residual projections (Wang et al.'s GPT-2); torch: PyTorch's defaults
    # (embeddings N(0, 1), nn.MultiheadAttention's in-projection) as in Grokfast's and Power et al.'s code.
    # Classic grokking depends on the large initial weight norm of the latter.
    init: str = "gpt2"
    # pre_ln: x + attn(ln1(x)) (GPT-2); normed: the residual stream continues from ln1(x), i.e.
    # h = ln1(x); h + attn(h) — the block of Grokfast's (and Power et al.'s minimal) code.
    residual: str = "pre_ln"
    activation: str = "gelu_tanh"  # gelu_tanh (GPT-2's gelu_new) | gelu (exact erf, nn.GELU) | relu

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_blocks(self) -> int:
        """Number of distinct blocks holding parameters."""
        return self.n_unique_blocks or self.n_layers

    def validate(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_mlp"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads:
            raise UserError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; change one of them"
            )
        if self.n_unique_blocks < 0 or (self.n_unique_blocks and self.n_layers % self.n_unique_blocks):
            raise UserError(
                f"model.n_unique_blocks={self.n_unique_blocks} must be 0 (no sharing) or divide "
                f"model.n_layers={self.n_layers}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.dropout={self.dropout} must be in [0, 1)")
        if self.init not in ("gpt2", "torch"):
            raise UserError(f"model.init={self.init!r} is not one of gpt2, torch")
        if self.residual not in ("pre_ln", "normed"):
            raise UserError(f"model.residual={self.residual!r} is not one of pre_ln, normed")
        if self.activation not in ("gelu_tanh", "gelu", "relu"):
            raise UserError(f"model.activation={self.activation!r} is not one of gelu_tanh, gelu, relu")


@dataclass(frozen=True)
class FilterConfig:
    """Grokfast gradient filter (Lee et al. 2024, Alg. 1/2), applied between backward() and the step."""

    kind: str = "none"  # none | ema | ma
    alpha: float = 0.98  # α: EMA momentum
    amplify: float = 2.0  # λ: gain on the slow gradient component
    window: int = 100  # w: MA window length
    warmup: bool = True  # MA: leave gradients unchanged until the window is full
    reduce: str = "mean"  # MA: mean or sum of the window

    def validate(self) -> None:
        if self.kind not in ("none", "ema", "ma"):
            raise UserError(f"filter.kind={self.kind!r} is not one of none, ema, ma")
        if not 0.0 <= self.alpha < 1.0:
            raise UserError(f"filter.alpha={self.alpha} must be in [0, 1)")
        if self.window < 1:
            raise UserError(f"filter.window={self.window} must be >= 1")
        if self.reduce not in ("mean", "sum"):
            raise UserError(f"filter.reduce={self.reduce!r} is not one of mean, sum")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping. Defaults follow Wang et al. §5 where they apply."""

    seed: int = 0  # model init, batch order and dropout; data has its own data.seed
    steps: int = 10_000
    batch_size: int = 512
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    optimizer: str = "adamw"  # adamw (decoupled weight decay) | adam (weight decay as L2 in the gradient)
    weight_decay: float = 0.1  # not applied to LayerNorm weights or biases (paper's AdamW groups) ...
    decay_all: bool = False  # ... unless true: every parameter decayed (Grokfast's code)
    warmup_steps: int = 200  # linear warm-up, then `schedule`
    # warm-up from lr 0: update k of the warm-up uses k/warmup_steps of lr, so the first update has lr 0 (as
    # torch's LambdaLR(update / warmup) in Grokfast's code); false: (k+1)/warmup_steps
    warmup_from_zero: bool = False
    schedule: str = "constant"  # constant | cosine
    min_lr_ratio: float = 0.1  # cosine: final lr as a fraction of lr
    grad_clip: float = 1.0  # 0 disables clipping
    explode_grad_norm: float = 1e4  # stop when the (filtered, unclipped) gradient norm exceeds this; 0 = never
    check_every: int = 50  # updates between checks for a non-finite loss or exploding gradient norm
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    autocast: str = "auto"  # auto (bf16 on GPU, none on CPU) | none | bf16
    threads: int = 0  # CPU threads; 0 = all cores
    compile: bool = False  # torch.compile the training forward/backward (first steps pay the compile time)
    eval_points: int = 60  # evaluations, log-spaced over the run (dense early, sparse late)
    eval_start: int = 1  # first evaluated step after step 0: the log-spaced grid runs from here to the end
    ckpt_points: int = 10  # checkpoints, log-spaced, plus the final step
    eval_batch_size: int = 0  # 0 = auto: 1024 on a CPU (cache-sized, fastest seen), 8192 on a GPU
    fit_threshold: float = 0.99  # fit: first eval where the train probe reaches this accuracy
    grok_threshold: float = 0.95  # grok: first eval where the test_id probe reaches this accuracy
    stop_on_grok: bool = False  # stop at the first eval where the run has both fit and grokked

    def validate(self) -> None:
        positive = ("steps", "batch_size", "eval_points", "eval_start", "ckpt_points", "check_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"train.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0:
            raise UserError(f"train.lr={self.lr} must be > 0")
        if self.optimizer not in ("adamw", "adam"):
            raise UserError(f"train.optimizer={self.optimizer!r} is not one of adamw, adam")
        if self.schedule not in ("constant", "cosine"):
            raise UserError(f"train.schedule={self.schedule!r} is not one of constant, cosine")
        if self.autocast not in ("auto", "none", "bf16"):
            raise UserError(f"train.autocast={self.autocast!r} is not one of auto, none, bf16")
        nonneg = ("warmup_steps", "grad_clip", "weight_decay", "threads", "explode_grad_norm", "eval_batch_size")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise UserError(f"train.{name}={getattr(self, name)} must be >= 0")
        for name in ("fit_threshold", "grok_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"train.{name}={getattr(self, name)} must be in (0, 1]")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: same config (and code) → same run."""

    data: Any
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)

    def validate(self) -> None:
        for part in (self.data, self.model, self.train, self.filter):
            part.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _task_config_class(task: Any) -> type:
    from groklab.tasks import TASKS

    if task not in TASKS:
        raise UserError(f"data.task={task!r} is unknown; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[task].config


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check (and gently convert: int→float, list→tuple) a TOML value against a field's type."""
    hint = typing.get_origin(annotation)
    if hint in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
        hint = typing.get_origin(annotation)
    if hint is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise UserError(f"{key}={value!r} must be a list of {len(args)} values, e.g. [0.9, 0.999]")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool) and type(value) is not annotation:
        raise UserError(f"{key}={value!r} must be of type {annotation.__name__}")
    return value


def _build(cls: type, values: dict, prefix: str) -> Any:
    """Build dataclass `cls` from a dict, refusing unknown keys by name."""
    if not isinstance(values, dict):
        raise UserError(f"[{prefix}] must be a table of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown key {prefix}.{unknown[0]}; valid keys in [{prefix}]: {', '.join(sorted(known))}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (numbers, booleans, lists, quoted strings); anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply dotted `key=value` overrides (e.g. `model.n_layers=4`) to a nested config dict."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise UserError(f"--set {item!r} must look like section.key=value, e.g. model.n_layers=4")
        section, name = parts
        if section not in ("data", "model", "train", "filter"):
            raise UserError(f"--set {item!r}: unknown section {section!r}; valid: data, model, train, filter")
        raw.setdefault(section, {})[name] = parse_value(text.strip())
    return raw


def from_dict(raw: dict) -> RunConfig:
    """A validated RunConfig from a nested dict (TOML tables or a run's config.json)."""
    known = {"data", "model", "train", "filter"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"unknown config section [{unknown[0]}]; valid sections: {', '.join(sorted(known))}")
    data = dict(raw.get("data", {}))
    if "task" not in data:
        raise UserError('config has no data.task; set it, e.g. data.task = "composition"')
    config = RunConfig(
        data=_build(_task_config_class(data["task"]), data, "data"),
        model=_build(ModelConfig, raw.get("model", {}), "model"),
        train=_build(TrainConfig, raw.get("train", {}), "train"),
        filter=_build(FilterConfig, raw.get("filter", {}), "filter"),
    )
    config.validate()
    return config


def find_toml(name_or_path: str, folder: Path, what: str) -> Path:
    """A TOML path, or the name of a file shipped in `folder` (`demo` → groklab/configs/demo.toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = folder / f"{name_or_path.removesuffix('.toml')}.toml"
    if preset.is_file():
        return preset
    names = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
    raise UserError(f"{what} {name_or_path!r} not found; give a TOML file or a {what} preset: {names}")


def resolve_preset(name_or_path: str) -> Path:
    """A config path, or the name of a shipped preset (`demo` → groklab/configs/demo.toml)."""
    return find_toml(name_or_path, PRESET_DIR, "config")


def load(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Load a TOML preset or file and apply `--set` overrides."""
    path = resolve_preset(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the file") from None
    return from_dict(apply_overrides(raw, overrides or []))
