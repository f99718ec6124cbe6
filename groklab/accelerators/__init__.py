"""Grokking accelerators, each one switch on any run, each in its own module with its paper and formula.

| switch                                 | module         | method                                          |
|----------------------------------------|----------------|-------------------------------------------------|
| `train.optimizer = "muon"`             | `muon.py`      | Muon on the blocks' matrices, AdamW on the rest |
| `train.grad_transform = "orthograd"`   | `orthograd.py` | ⊥Grad: gradient orthogonal to the weights       |
| `train.grad_transform = "egd"`         | `egd.py`       | egalitarian GD: each matrix's gradient → U Vᵀ   |
| `train.loss = "stablemax"`             | `stablemax.py` | StableMax cross-entropy                         |
| `filter.kind = "ema"` / `"ma"`         | `grokfast.py`  | Grokfast: the slow gradient amplified by λ      |
| `filter.normalize_lr = true`           | `optim.py`     | Grokfast's lr divided by 1 + λ (`lr_scale`)     |

Grokfast's filters and the gradient transforms are one contract (`base.GradTransform`): built from the model and
their config section, called with no arguments after `backward()`, state by parameter name.
Adding one: write `<name>.py` (docstring: paper, formula, what the tests check), add its line to the table
below that fits it — `GRAD_TRANSFORMS` or `FILTERS` (a `GradTransform` subclass: `__call__()` rewrites
`.grad` of `self.params` in place, `state_dict()` / `load_state_dict()` if it keeps state), `LOSSES`
(`loss(logits [N, vocab], targets [N]) -> scalar`) or `optim.OPTIMIZERS` (`make(model, train_cfg, lr_scale) ->
optimiser`) — and its name to the field's `Literal[...]` in `config.py`; its own hyper-parameters go into
`[accelerator]` (`config.AcceleratorConfig`), named `<name>_<setting>`. `tests/test_accelerators.py` fails
when a table and its `Literal` differ.
`diagnostics.py` holds the measurements logged at every evaluation (`weights/norm`, `train/softmax_collapse`,
`train/grad_weight_cos`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from groklab.accelerators.base import GradTransform
from groklab.accelerators.egd import Egalitarian
from groklab.accelerators.grokfast import EmaFilter, MaFilter
from groklab.accelerators.orthograd import OrthoGrad
from groklab.accelerators.stablemax import stablemax_cross_entropy
from groklab.config import FilterConfig
from groklab.metrics import answer_loss

# filter.kind: Grokfast, applied first after backward()
FILTERS: dict[str, type[GradTransform]] = {"none": GradTransform, "ema": EmaFilter, "ma": MaFilter}

# train.grad_transform: applied after the Grokfast filter, before clipping and the optimiser step
GRAD_TRANSFORMS: dict[str, type[GradTransform]] = {"none": GradTransform, "orthograd": OrthoGrad, "egd": Egalitarian}
# train.loss: the training loss on answer logits [N, vocab] (sequence tasks: every target token) and targets [N]
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"softmax": answer_loss, "stablemax": stablemax_cross_entropy}


def make_filter(model: nn.Module, cfg: FilterConfig) -> GradTransform:
    """The Grokfast filter `filter.kind` names (FILTERS)."""
    return FILTERS[cfg.kind](model, cfg)
