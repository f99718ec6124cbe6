"""Typed run configuration: frozen dataclasses built from TOML presets plus dotted `--set` overrides.

Unknown keys, wrong types, choices outside a field's `Literal[...]` and non-finite floats (NaN, ±inf) are
errors that name the key and the fix; nothing is silently ignored. These checks and how a value is written in a
message live once in `groklab.typed` (the task configs use them too), reading TOML and dotted keys below; sweep
files use the same functions.
The `[data]` table is the chosen task's own config class (`groklab.tasks.TASKS[task].config`), checked by the
same rules, so a task declares a choice by annotating its field `Literal[...]` and nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from groklab.errors import UserError
from groklab.tasks import TASKS
from groklab.typed import build, check_fields, format_value, refuse_unknown
from groklab.typed import check_choice as check_choice  # the toolkit is spelt config.X by sweep files and curricula

PRESET_DIR = Path(__file__).parent / "configs"
SECTIONS = ("data", "model", "train", "filter", "accelerator")  # a config's tables; a dotted key's first part
RUN_CONFIG = "config.json"  # the fully resolved config a run folder keeps; a run trains again from it


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only GPT-2-style transformer (Wang et al. §5 preset: 8 layers, 768 wide, 12 heads).

    Depth and parameter sharing: the model holds a block of `n_layers` distinct layers and applies it `loops`
    times with the same weights, so it is `depth = n_layers × loops` layers deep and depth l runs layer
    l % n_layers. loops = 1 is the plain model; Wang et al.'s App. E.2 sharing (4 blocks applied twice) is
    n_layers = 4, loops = 2; Kohli et al.'s looped model (a block of 4 GPT-2 layers × 4 loops) n_layers = 4,
    loops = 4. Hook names, the logit lens, causal tracing and the export count layers by depth, so every loop
    has its own. Configs written before `loops` existed said `n_unique_blocks = k` with `n_layers` the depth;
    `migrate_model` reads them as n_layers = k, loops = depth / k (the same parameters and forward pass).
    """

    n_layers: int = 4  # distinct layers in the block (the depth when loops = 1)
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    loops: int = 1  # r: times the block is applied, with shared weights (Kohli et al. 2026: r = 4)
    # re-add the embeddings (token + position, the state that enters the first layer) to the residual stream at
    # the start of every loop after the first ("input injection" of looped transformers, e.g. Yang et al. ICLR
    # 2024, Geiping et al. 2025); Kohli et al. and Wang et al. loop without it
    inject_input: bool = False
    # zero-initialise each layer's output projections (attn.out, mlp.proj: weights and biases), so every layer
    # is the identity on the residual stream at init and a deep or looped stack starts as a shallow one
    zero_init_out: bool = False
    tie_embeddings: bool = True
    dropout: float = 0.0
    # gpt2: N(0, 0.02) with scaled residual projections (Wang et al.'s GPT-2); torch: PyTorch's defaults
    # (embeddings N(0, 1), nn.MultiheadAttention's in-projection) as in Grokfast's and Power et al.'s code.
    # Classic grokking depends on the large initial weight norm of the latter.
    init: Literal["gpt2", "torch"] = "gpt2"
    # Omnigrok's lever (Liu et al., ICLR 2023): every weight matrix and embedding is multiplied by this after `init`.
    # A larger initial norm lets the model memorise first; decoupled weight decay then shrinks the norm by a
    # factor e every 1/(lr·wd) updates until it reaches the generalising zone, so the scale sets the plateau.
    init_scale: float = 1.0
    # pre_ln: x + attn(ln1(x)) (GPT-2); normed: the residual stream continues from ln1(x), i.e.
    # h = ln1(x); h + attn(h) — the block of Grokfast's (and Power et al.'s minimal) code.
    residual: Literal["pre_ln", "normed"] = "pre_ln"
    activation: Literal["gelu_tanh", "gelu", "relu"] = "gelu_tanh"  # GPT-2's gelu_new | exact erf (nn.GELU) | relu

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def depth(self) -> int:
        """Layers applied in a forward pass: the block's n_layers, `loops` times."""
        return self.n_layers * self.loops

    def validate(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_mlp", "loops"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads:
            raise UserError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; change one of them"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.dropout={self.dropout} must be in [0, 1)")
        if self.init_scale <= 0:
            raise UserError(f"model.init_scale={self.init_scale} must be > 0 (1 = the init's own scale)")


@dataclass(frozen=True)
class FilterConfig:
    """Grokfast gradient filter (Lee et al. 2024, Alg. 1/2), applied between backward() and the step."""

    kind: Literal["none", "ema", "ma"] = "none"
    alpha: float = 0.98  # α: EMA momentum
    amplify: float = 2.0  # λ: gain on the slow gradient component
    window: int = 100  # w: MA window length
    warmup: bool = True  # MA: leave gradients unchanged until the window is full
    reduce: Literal["mean", "sum"] = "mean"  # MA: mean or sum of the window
    # divide the lr (train.lr and accelerator.muon_lr) by 1 + λ, so that a filter does not win by a larger step:
    # a steady gradient g leaves the filter as (1 + λ)·g (optim.lr_scale); no effect with kind = "none"
    normalize_lr: bool = False

    def validate(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise UserError(f"filter.alpha={self.alpha} must be in [0, 1)")
        if self.window < 1:
            raise UserError(f"filter.window={self.window} must be >= 1")
        if self.normalize_lr and self.kind != "none" and self.amplify <= -1:
            raise UserError(
                f"filter.normalize_lr divides the lr by 1 + filter.amplify, so filter.amplify={self.amplify:g} "
                "must be > -1; raise it or set filter.normalize_lr=false"
            )


@dataclass(frozen=True)
class AcceleratorConfig:
    """The grokking accelerators' own hyper-parameters (groklab/accelerators/), each named
    `<accelerator>_<setting>`, so that a new one adds a line here, not a field to [train]. The switches that choose
    them stay in the run's recipe: train.optimizer, train.grad_transform, train.loss, filter.kind (Grokfast's
    settings are [filter])."""

    muon_lr: float = 0.02  # train.optimizer=muon: Muon's lr on the blocks' matrices (Jordan's default; train.lr: AdamW)

    def validate(self) -> None:
        if self.muon_lr <= 0:
            raise UserError(f"accelerator.muon_lr={self.muon_lr} must be > 0, e.g. the default 0.02")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping. Defaults follow Wang et al. §5 where they apply."""

    seed: int = 0  # model init, batch order and dropout; data has its own data.seed
    steps: int = 10_000
    batch_size: int = 512
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    optimizer: Literal["adamw", "adam", "muon"] = "adamw"  # adamw: decoupled weight decay; adam: L2 in the gradient
    # accelerators (groklab/accelerators/): a gradient transform after the filter, before clipping; the training loss
    grad_transform: Literal["none", "orthograd", "egd"] = "none"
    loss: Literal["softmax", "stablemax"] = "softmax"  # probes' <probe>/loss stays softmax cross-entropy
    # ε of label smoothing in the training loss (Szegedy et al. 2016; Kohli et al. use 0.1): the target is
    # (1 − ε)·one-hot + ε/vocab; probes' <probe>/loss stays plain cross-entropy. Softmax loss only.
    label_smoothing: float = 0.0
    adam_eps: float = 1e-8  # ε of Adam/AdamW's denominator √v + ε (torch's default)
    weight_decay: float = 0.1  # not applied to LayerNorm weights or biases (paper's AdamW groups) ...
    decay_all: bool = False  # ... unless true: every parameter decayed (Grokfast's code)
    warmup_steps: int = 200  # linear warm-up, then `schedule`
    # warm-up from lr 0: update k of the warm-up uses k/warmup_steps of lr, so the first update has lr 0 (as
    # torch's LambdaLR(update / warmup) in Grokfast's code); false: (k+1)/warmup_steps
    warmup_from_zero: bool = False
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1  # cosine: final lr as a fraction of lr
    # cosine: the update at which the lr reaches min_lr_ratio·lr and stays (0 = train.steps). A short decay lets a
    # model memorise at a falling lr (less gradient noise) and then wait on a plateau at the floor, where weight
    # decay keeps shrinking the weights until the generalising circuit wins (the demo)
    decay_steps: int = 0
    grad_clip: float = 1.0  # 0 disables clipping
    explode_grad_norm: float = 1e4  # stop when the (filtered, unclipped) gradient norm exceeds this; 0 = never
    check_every: int = 50  # updates between checks for a non-finite loss or exploding gradient norm
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    autocast: Literal["auto", "none", "bf16"] = "auto"  # auto: bf16 on GPU, none on CPU
    threads: int = 0  # CPU threads; 0 = all cores
    compile: bool = False  # torch.compile the training forward/backward (first steps pay the compile time)
    eval_points: int = 60  # evaluations, log-spaced over the run (dense early, sparse late)
    eval_start: int = 1  # first evaluated step after step 0: the log-spaced grid runs from here to the end
    ckpt_points: int = 10  # checkpoints, log-spaced, plus the final step
    eval_batch_size: int = 0  # 0 = auto: 1024 on a CPU (cache-sized, fastest seen), 8192 on a GPU
    fit_threshold: float = 0.99  # fit: first eval where the train probe reaches this accuracy
    grok_threshold: float = 0.95  # grok: first eval where the test_id probe reaches this accuracy
    stop_on_grok: bool = False  # stop at the first eval where the run has both fit and grokked
    # mirrors of metrics.jsonl (groklab/trackers.py), updated at each checkpoint; metrics.jsonl stays the record
    tensorboard: bool = False  # event files in RUN/tensorboard/ (extra [tb])
    wandb: Literal["off", "offline"] = "off"  # Weights & Biases, never online: `wandb sync` uploads (extra [wandb])

    def validate(self) -> None:
        positive = ("steps", "batch_size", "eval_points", "eval_start", "ckpt_points", "check_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"train.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0:
            raise UserError(f"train.lr={self.lr} must be > 0")
        if not all(0 <= b < 1 for b in self.betas):  # as torch's Adam requires, refused before a run folder exists
            raise UserError(f"train.betas={format_value(self.betas)} must both be in [0, 1), e.g. [0.9, 0.999]")
        nonneg = ("warmup_steps", "decay_steps", "grad_clip", "weight_decay", "threads", "explode_grad_norm")
        nonneg += ("eval_batch_size",)
        for name in nonneg:
            if getattr(self, name) < 0:
                raise UserError(f"train.{name}={getattr(self, name)} must be >= 0")
        for name in ("fit_threshold", "grok_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"train.{name}={getattr(self, name)} must be in (0, 1]")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1), e.g. 0.1")
        if self.label_smoothing and self.loss != "softmax":
            raise UserError(f"train.label_smoothing={self.label_smoothing:g} is implemented for train.loss='softmax' "
                            f"only, not {self.loss!r}; set train.label_smoothing=0 or train.loss='softmax'")
        if self.adam_eps <= 0:
            raise UserError(f"train.adam_eps={self.adam_eps} must be > 0, e.g. the default 1e-8")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: same config (and code) → same run."""

    data: Any
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    accelerator: AcceleratorConfig = field(default_factory=AcceleratorConfig)

    def validate(self) -> None:
        for section in SECTIONS:
            part = getattr(self, section)
            check_fields(part, section)  # types, choices and finiteness, also of sections built in Python
            part.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- the toolkit: TOML files, dotted keys, values and their checks, each written once ------------------------
def read_toml(path: Path) -> dict:
    """A TOML file as a dict; a file that does not parse is one error line naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the file") from None


@contextmanager
def within(prefix: str) -> Iterator[None]:
    """Say where a UserError raised inside happened (a file, a table, a grid point): `prefix` + its message."""
    try:
        yield
    except UserError as exc:
        raise UserError(f"{prefix}{exc}") from None


def split_key(key: str) -> tuple[str, str]:
    """A dotted key `section.name` (`model.n_layers`) as (section, name), refusing any other shape."""
    section, dot, name = key.partition(".")
    if not dot or not section or not name or "." in name or section not in SECTIONS:
        unknown = f"; unknown section {section!r}" if dot and section not in SECTIONS else ""
        raise UserError(
            f"{key!r} must be section.name with section one of {', '.join(SECTIONS)}, e.g. model.n_layers{unknown}"
        )
    return section, name


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """`{"data": {"phi": 1}}` → `{"data.phi": 1}`, so `data.phi = ...` and `"data.phi" = ...` mean the same.
    No config value is itself a table, so every table is a level of the key."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def set_dotted(raw: dict, values: dict[str, Any]) -> dict:
    """A copy of the nested config dict `raw` with dotted `values` set: {"model.n_layers": 2} → raw["model"]."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for key, value in values.items():
        section, name = split_key(key)
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise UserError(f"[{section}] must be a table of settings, got {format_value(table)}")
        table[name] = value
    return out


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (numbers, booleans, lists, quoted strings); anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _task_config_class(task: Any) -> type:
    if task not in TASKS:
        raise UserError(f"data.task={format_value(task)} is unknown; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[task].config


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply dotted `key=value` overrides (e.g. `model.n_layers=4`) to a nested config dict."""
    values = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r} must look like section.key=value, e.g. model.n_layers=4")
        with within(f"--set {item!r}: "):
            split_key(key.strip())
        values[key.strip()] = parse_value(text.strip())
    return set_dotted(raw, values)


def from_dict(raw: dict) -> RunConfig:
    """A validated RunConfig from a nested dict (TOML tables or a run's config.json)."""
    refuse_unknown(raw, SECTIONS, "at a config's top level")
    raw = migrate_moved(raw)
    data = raw.get("data", {})
    if not isinstance(data, dict) or "task" not in data:
        raise UserError('config has no data.task; set it, e.g. data.task = "composition"')
    config = RunConfig(
        data=build(_task_config_class(data["task"]), data, "data"),
        model=build(ModelConfig, migrate_model(raw.get("model", {})), "model"),
        train=build(TrainConfig, raw.get("train", {}), "train"),
        filter=build(FilterConfig, raw.get("filter", {}), "filter"),
        accelerator=build(AcceleratorConfig, raw.get("accelerator", {}), "accelerator"),
    )
    config.validate()
    return config


# settings that moved to another table: section -> {old name: new section}. Read from a committed config.json,
# a TOML file, --set or a sweep grid alike (`migrate_moved`), so the ~400 committed runs and the sweep files that
# name run folders by the old key (`muon_lr=0.02`) still load, resume and are recognised
MOVED = {"train": {"muon_lr": "accelerator"}}


def migrate_moved(raw: dict) -> dict:
    """A copy of a nested config dict with MOVED keys in their new table (`train.muon_lr` → `accelerator.muon_lr`);
    both spellings with different values is an error naming them."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, names in MOVED.items():
        for name, target in names.items():
            if not isinstance(out.get(section), dict) or name not in out[section]:
                continue
            value = out[section].pop(name)
            table = out.setdefault(target, {})
            if not isinstance(table, dict):
                raise UserError(f"[{target}] must be a table of settings, got {format_value(table)}")
            if table.get(name, value) != value:
                raise UserError(f"{section}.{name}={format_value(value)} and {target}.{name}="
                                f"{format_value(table[name])} disagree; keep only {target}.{name} (its new name)")
            table[name] = value
    return out


# keys that older configs wrote and `from_dict` still reads, translating them (sweep files may sweep them too)
LEGACY_KEYS = {"model": ("n_unique_blocks",), "train": tuple(MOVED["train"])}


def migrate_model(values: Any) -> Any:
    """A [model] table with the sharing key of configs older than `model.loops` translated: `n_unique_blocks = k`
    (0 = no sharing) with `n_layers = L` meant depth l runs block l % k, i.e. a block of k layers looped L / k
    times: n_layers = k, loops = L / k. The model then has the same parameters (blocks.0 .. blocks.{k-1}), init
    and forward pass, so committed runs, their checkpoints and warm starts stay valid. It is translated wherever
    it is read (a run's config.json, TOML, --set, a sweep's grid) rather than refused, because committed sweep
    files name their run folders by it (`seed=0,n_unique_blocks=2`) and must still resume and recognise them;
    the resolved config a run writes never holds it."""
    if not isinstance(values, dict) or "n_unique_blocks" not in values:
        return values
    out = dict(values)
    k = out.pop("n_unique_blocks")
    depth = out.get("n_layers", ModelConfig.n_layers)
    fix = "write the block's layers as model.n_layers and the repeats as model.loops instead"
    if type(k) is not int or k < 0:
        raise UserError(f"model.n_unique_blocks={format_value(k)} must be an int >= 0; {fix}")
    if out.get("loops", 1) != 1:
        raise UserError(f"model.n_unique_blocks={k} and model.loops both set sharing; remove model.n_unique_blocks "
                        f"(model.loops repeats the block of model.n_layers layers)")
    if k == 0:
        return out
    if type(depth) is not int or depth % k:
        raise UserError(f"model.n_unique_blocks={k} must divide model.n_layers={format_value(depth)}; {fix}")
    out["n_layers"], out["loops"] = k, depth // k
    return out


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
    """A config path, the name of a shipped preset (`demo` → groklab/configs/demo.toml), or a run folder, which
    stands for its `config.json` (so any committed run under docs/runs/ trains again from its record)."""
    folder = Path(name_or_path)
    if is_run_folder(folder):
        return folder / RUN_CONFIG
    try:
        return find_toml(name_or_path, PRESET_DIR, "config")
    except UserError:
        if folder.is_dir():
            message = f"{folder} is a folder without {RUN_CONFIG}; give a TOML file, a preset or a run folder"
            raise UserError(message) from None
        raise


def is_run_folder(path: Path) -> bool:
    return (path / RUN_CONFIG).is_file()


def resolve_beside(name: str, folder: Path) -> Path:
    """A config named inside a sweep or curriculum file in `folder`: a file or run folder beside that file, else
    what `resolve_preset` finds (a path from the working directory, a shipped preset)."""
    beside = folder / name
    return resolve_preset(str(beside) if beside.is_file() or is_run_folder(beside) else name)


def read_config(path: Path) -> dict:
    """A run config as a dict: a TOML file, or the `config.json` a run writes (its fully resolved config)."""
    path = Path(path)
    if path.suffix != ".json":
        return read_toml(path)
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(raw, dict) or not all(isinstance(raw[key], dict) for key in raw):
        raise UserError(f"{path}: a JSON config must be an object of sections ({', '.join(SECTIONS)}), as a run's "
                        f"{RUN_CONFIG} is")
    return raw


def load(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Load a preset, a TOML file or a run's config.json (or its folder) and apply `--set` overrides."""
    return from_dict(apply_overrides(read_config(resolve_preset(name_or_path)), overrides or []))
