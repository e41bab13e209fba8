"""BM25 search (bm25s) over a corpus of documents: the default backend.

Documents are indexed as "title text", lower-cased, English stopwords removed, no stemming.
`BM25Searcher.from_documents` builds the index once and caches it by corpus hash (see
`index_store`); later calls with the same corpus load it from disk. Queries that match no
indexed word return no hits (zero-score matches are dropped). Ties keep bm25s' order, which is
deterministic for a given index.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.tools.base import Document, Hit
from selfimprove.tools.index_store import (
    build_atomically,
    load_or_build,
    read_backend_manifest,
    read_documents,
)

BACKEND = "bm25"
_BM25_DIR = "bm25"


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class BM25Searcher:
    """A Searcher over an in-memory bm25s index."""

    name = BACKEND

    def __init__(self, documents: list[Document], retriever, index_dir: Path | None = None):
        self.documents, self.retriever, self.index_dir = documents, retriever, index_dir

    @classmethod
    def build(cls, documents: list[Document]) -> BM25Searcher:
        """Index `documents` in memory (no disk cache)."""
        import bm25s

        if not documents:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        retriever = bm25s.BM25()
        retriever.index(_tokenize([f"{d.title} {d.text}" for d in documents]), show_progress=False)
        return cls(list(documents), retriever)

    @classmethod
    def from_documents(cls, documents: list[Document], cache: bool = True) -> BM25Searcher:
        """Load the cached index for this corpus, building and caching it first if needed."""
        if not cache:
            return cls.build(documents)
        return load_or_build(BACKEND, documents, lambda: cls.build(documents), cls.load)

    @classmethod
    def load(cls, index_dir: str | Path) -> BM25Searcher:
        import bm25s

        index_dir = Path(index_dir)
        read_backend_manifest(index_dir, BACKEND)
        retriever = bm25s.BM25.load(str(index_dir / _BM25_DIR), show_progress=False)
        return cls(read_documents(index_dir), retriever, index_dir)

    def save(self, index_dir: str | Path) -> Path:
        def write(tmp: Path) -> None:
            self.retriever.save(str(tmp / _BM25_DIR), show_progress=False)

        build_atomically(Path(index_dir), BACKEND, self.documents, write, {"tokenizer": "bm25s-en-stopwords"})
        self.index_dir = Path(index_dir)
        return self.index_dir

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        if not queries:
            return []
        k = max(0, min(k, len(self.documents)))
        if k == 0:
            return [[] for _ in queries]
        indices, scores = self.retriever.retrieve(_tokenize(list(queries)), k=k, show_progress=False, n_threads=1)
        return [self._hits(row_ids, row_scores) for row_ids, row_scores in zip(indices, scores, strict=True)]

    def _hits(self, row_ids, row_scores) -> list[Hit]:
        hits = []
        for doc_index, score in zip(row_ids.tolist(), row_scores.tolist(), strict=True):
            if score > 0:
                doc = self.documents[doc_index]
                hits.append(Hit(doc.id, doc.title, doc.text, float(score)))
        return hits
