"""On-disk indexes: one directory per index, built once, cached by a content hash of the corpus.

An index directory holds `index.json` (backend, corpus hash, document count, options, creation
time), `documents.jsonl` (the corpus) and the backend's own files. `cached_index_dir` names the
cache entry `<cache>/indexes/<backend>-<hash16>[-<options>]` under
`selfimprove.cache.cache_dir()`. `build_atomically` builds into a temporary sibling
and renames it into place, so a crash mid-build never leaves a half index that looks complete
(two processes building the same index at once both succeed; the last rename wins).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfimprove.cache import cache_dir
from selfimprove.errors import DataError
from selfimprove.tools.base import Document
from selfimprove.tools.corpus import corpus_hash, load_corpus_jsonl, write_corpus_jsonl

MANIFEST = "index.json"
DOCUMENTS = "documents.jsonl"


def index_cache_root() -> Path:
    """`<selfimprove cache>/indexes`."""
    return cache_dir() / "indexes"


def cached_index_dir(backend: str, documents: list[Document], options_tag: str = "") -> Path:
    """The cache directory for `backend` over exactly these documents."""
    suffix = f"-{options_tag}" if options_tag else ""
    return index_cache_root() / f"{backend}-{corpus_hash(documents)[:16]}{suffix}"


def is_complete(index_dir: Path) -> bool:
    return (index_dir / MANIFEST).is_file() and (index_dir / DOCUMENTS).is_file()


def build_atomically(index_dir: Path, backend: str, documents: list[Document],
                     write_backend_files: Callable[[Path], None], options: dict[str, Any] | None = None) -> None:
    """Write documents, backend files and the manifest into a temp dir, then rename it to `index_dir`."""
    index_dir = Path(index_dir)
    tmp = index_dir.with_name(index_dir.name + f".tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        write_corpus_jsonl(tmp / DOCUMENTS, documents)
        write_backend_files(tmp)
        manifest = {"backend": backend, "corpus_hash": corpus_hash(documents), "num_documents": len(documents),
                    "options": options or {}, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(index_dir, ignore_errors=True)
        tmp.rename(index_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """Read and check an index directory's manifest."""
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise DataError(index_dir, f"not an index directory (no {MANIFEST}); build one with `selfimprove index build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("backend"), str):
        raise DataError(path, "expected an object with a string", field="backend")
    return manifest


def read_backend_manifest(index_dir: str | Path, backend: str) -> dict[str, Any]:
    """Read the manifest and check that `backend` built this index."""
    manifest = read_manifest(index_dir)
    if manifest["backend"] != backend:
        raise DataError(index_dir, f"is a '{manifest['backend']}' index, not {backend}", field="backend")
    return manifest


def load_or_build(backend: str, documents: list[Document], build: Callable[[], Any],
                  load: Callable[[Path], Any], options_tag: str = "") -> Any:
    """Open the cached index for these documents, building (`build().save(dir)`) it first if absent."""
    index_dir = cached_index_dir(backend, documents, options_tag)
    if not is_complete(index_dir):
        build().save(index_dir)
    return load(index_dir)


def read_documents(index_dir: str | Path) -> list[Document]:
    return load_corpus_jsonl(Path(index_dir) / DOCUMENTS)


def copy_index(source: Path, target: str | Path) -> Path:
    """Copy a built index directory to `target` (replacing it)."""
    target = Path(target)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target
