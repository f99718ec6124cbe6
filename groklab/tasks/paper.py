"""How the paper's released files spell a task (Wang et al. 2024, github.com/OSU-NLP-Group/GrokkedTransformer).

A task that has such files states it in its registry line, `TaskSpec(..., paper=PaperFormat(...))`;
`tasks/io.py` reads and writes the format from that entry alone, never from a task's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from groklab.tasks.comparison import SEPARATORS

PROBE_NAMES = {"test_inferred_id": "test_inferred_iid"}  # our probe name -> the paper's `type`, every task


@dataclass(frozen=True)
class PaperFormat:
    """One task's spelling in the paper's train.json / test.json / valid.json / vocab.json."""

    # fact kind -> (input_text, answer part of target_text), as the paper's notebooks form them
    templates: dict[str, tuple[str, str]]
    # a token prefix of the vocabulary that tells this task's files from others' (`<r_`: relations)
    marker: str
    # our probe name -> the paper's `type`, beyond PROBE_NAMES; a task whose files have these types is told
    # from another task with the same marker by them (complex's `test_hard`)
    probe_names: dict[str, str] = field(default_factory=dict)
    # role -> the paper's probe, used when the registered probe is absent from the files
    paper_roles: dict[str, str] = field(default_factory=dict)
    # separators of the paper's template that stay input tokens on import (comparison's `<q>`, `<mask>`)
    separators: tuple[str, ...] = ()
    # where the atomic facts `a b -> v` that rebuild the structure fields come from: the training set only
    # (composition trains on every atomic fact) or every split (complex keeps the OOD values out of training)
    atomic_from_train: bool = False

    def names(self) -> dict[str, str]:
        """Our probe name -> the paper's `type`, for this task."""
        return PROBE_NAMES | self.probe_names


COMPOSITION = PaperFormat(
    templates={"atomic": ("{0}{1}", "{a}</a>"), "inferred": ("{0}{1}{2}", "{a}</a>")},
    marker="<r_",
    atomic_from_train=True,
)
COMPARISON = PaperFormat(
    templates={"atomic": ("{0}{1}", "{a}</a>"), "inferred": ("{0}<q>{1}<mask>{2}", "{a}</a>")},
    marker="<attr_",
    separators=SEPARATORS,
)
COMPLEX = PaperFormat(
    templates={"atomic": ("<q>{0}{1}<mask></q>", "<a>{a}</a>"), "inferred": ("{0}<q>{1}<mask>{2}</q>", "<a>{a}</a>")},
    marker="<attr_",
    probe_names={"test_inferred": "test_hard"},
    paper_roles={"train": "train_inferred_topleft"},
)
