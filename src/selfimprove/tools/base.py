"""The search protocol every backend implements, and its value types.

A `Searcher` answers a batch of queries at once: `search(queries, k)` returns, for each query,
up to `k` `Hit`s, best first. An empty or unsearchable query (only stopwords, unknown words)
yields an empty list, never an exception. Backends say nothing about score scales: BM25 scores,
cosine similarities and rank-based scores are not comparable across backends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Document:
    """One corpus entry: a stable id, a title and the text that is searched and shown."""

    id: str
    title: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """One search result. `score` is backend-specific (higher is better)."""

    id: str
    title: str
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Searcher(Protocol):
    """Anything that answers batched queries with ranked hits."""

    name: str

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Return up to `k` hits per query, best first, in query order."""
        ...
