"""Tools layer: search backends behind one batched protocol, indexes built once and cached.

- `Searcher.search(queries, k) -> list[list[Hit]]` (see `tools.base`).
- Backends by name in `SEARCHERS`: `bm25` (bm25s, default), `dense` (sentence-transformers,
  extra `[dense]`), `wikipedia` (online, httpx). A "package.module:Class" path works too; such a
  class needs `from_documents(documents, **options)` (corpus backends) or a no-corpus constructor.
- `build_searcher(name, documents)` builds/loads a cached index; `load_index(dir)` opens a
  directory written by `selfimprove index build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.registry import Registry
from selfimprove.tools.base import Document, Hit, Searcher

SEARCHERS = Registry(
    "searcher",
    {
        "bm25": "selfimprove.tools.bm25:BM25Searcher",
        "dense": "selfimprove.tools.dense:DenseSearcher",
        "wikipedia": "selfimprove.tools.wikipedia:WikipediaSearcher",
    },
    group="selfimprove.searchers",  # plugins: entry points of installed packages
)


def build_searcher(name: str, documents: list[Document] | None = None, **options: Any) -> Searcher:
    """A ready searcher: corpus backends (with `from_documents`) need `documents`; others ignore them."""
    target = SEARCHERS.get(name)
    if hasattr(target, "from_documents"):
        if not documents:
            raise UserError(f"searcher '{name}' needs a corpus: pass --corpus, --index or a task with contexts")
        return target.from_documents(documents, **options)
    return target(**options) if isinstance(target, type) else target


def load_index(index_dir: str | Path) -> Searcher:
    """Open an index directory (its manifest says which backend built it)."""
    from selfimprove.tools.index_store import read_manifest

    backend = read_manifest(index_dir)["backend"]
    target = SEARCHERS.get(backend)
    if not hasattr(target, "load"):
        raise UserError(f"{index_dir}: backend '{backend}' cannot load an index directory")
    return target.load(index_dir)


__all__ = ["SEARCHERS", "Document", "Hit", "Searcher", "build_searcher", "load_index"]
