"""The retriever of the non-parametric setting: BM25 (bm25s, a maintained sparse-matrix implementation) over the
facts rendered as sentences, queried with the question's text. It is the paper's "+R" setting made concrete:
the facts a lexical retriever ranks highest, not the facts a solver would need (a second hop shares no name
with the question, so a retriever rarely finds it: that is part of what the comparison shows).
"""

from __future__ import annotations

from groklab.errors import UserError


def require_bm25s():
    try:
        import bm25s
    except ImportError:
        raise UserError(
            "--context retrieve needs the bm25s package; install it with pip install 'groklab[llm]'"
        ) from None
    return bm25s


def top_k(documents: list[str], queries: list[str], k: int) -> list[list[int]]:
    """For each query, the indices of the k documents BM25 scores highest, best first."""
    bm25s = require_bm25s()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
    k = min(k, len(documents))
    ids, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k, show_progress=False)
    return [[int(i) for i in row] for row in ids]
