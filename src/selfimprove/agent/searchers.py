"""Choosing the searcher for an agent run: a prebuilt index, a corpus file, or the task's own contexts.

Order of precedence: `index_dir` (opened as built) > `corpus` (a JSONL of {id, title, text}) >
the examples' `meta["context"]` (HotpotQA layout, one document per paragraph, deduplicated by
title). Backends that need no corpus (wikipedia) ignore all three. Indexes are cached on disk.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.errors import UserError
from selfimprove.tasks.base import Example
from selfimprove.tools import SEARCHERS, Searcher, build_searcher, load_index
from selfimprove.tools.corpus import corpus_from_contexts, load_corpus_jsonl


def searcher_for_run(name: str, examples: list[Example], corpus: str | Path | None = None,
                     index_dir: str | Path | None = None) -> Searcher:
    """The searcher an agent run uses (see the module docstring for precedence)."""
    if index_dir is not None:
        return load_index(index_dir)
    if not hasattr(SEARCHERS.get(name), "from_documents"):
        return build_searcher(name)
    if corpus is not None:
        return build_searcher(name, load_corpus_jsonl(corpus))
    contexts = [e.meta["context"] for e in examples if isinstance(e.meta, dict) and e.meta.get("context")]
    if not contexts:
        raise UserError(f"searcher '{name}' needs a corpus: these examples carry no context; pass --corpus or --index")
    return build_searcher(name, corpus_from_contexts(contexts))
