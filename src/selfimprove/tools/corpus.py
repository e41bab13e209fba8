"""Corpora for the search backends: JSONL files of {id, title, text}, or HotpotQA contexts.

`load_corpus_jsonl` validates every line (file:line:field errors). `corpus_from_contexts` turns
HotpotQA contexts (original layout `[[title, [sentences]]]` or the Hugging Face layout
`{"title": [...], "sentences": [[...]]}`) into one document per paragraph, deduplicated by title
(the first paragraph seen for a title wins; the id is the title). `corpus_hash` is a content
hash over ids, titles and texts in order, used to key cached indexes; it does not normalise
whitespace or order, so a reordered corpus gets a new index.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import iter_jsonl, write_jsonl
from selfimprove.data.safe_load import read_json_file
from selfimprove.errors import DataError
from selfimprove.tools.base import Document


def load_corpus_jsonl(path: str | Path) -> list[Document]:
    """Read a corpus JSONL file; each line needs string `id`, `title` and `text`; ids must be unique."""
    documents, seen = [], set()
    for line, record in iter_jsonl(path):
        for field in ("id", "title", "text"):
            if not isinstance(record.get(field), str):
                raise DataError(path, "expected a string", line=line, field=field)
        if record["id"] in seen:
            raise DataError(path, f"duplicate id '{record['id']}'", line=line, field="id")
        seen.add(record["id"])
        documents.append(Document(record["id"], record["title"], record["text"]))
    if not documents:
        raise DataError(path, "the corpus is empty")
    return documents


def write_corpus_jsonl(path: str | Path, documents: Iterable[Document]) -> int:
    """Write documents as a corpus JSONL file (atomically)."""
    return write_jsonl(path, (d.to_dict() for d in documents))


def context_paragraphs(context: Any) -> list[tuple[str, str]]:
    """(title, paragraph text) pairs from a HotpotQA context in either layout.

    >>> context_paragraphs([["Paris", ["Paris is a city.", " It is in France."]]])
    [('Paris', 'Paris is a city. It is in France.')]
    >>> context_paragraphs({"title": ["A"], "sentences": [["x", " y"]]})
    [('A', 'x y')]
    """
    if isinstance(context, dict):
        pairs = zip(context.get("title", []), context.get("sentences", []), strict=False)
    else:
        pairs = ((item[0], item[1]) for item in context or [])
    return [(str(title), "".join(str(s) for s in sentences).strip()) for title, sentences in pairs]


def corpus_from_contexts(contexts: Iterable[Any]) -> list[Document]:
    """One document per paragraph over many HotpotQA contexts, deduplicated by title."""
    documents: dict[str, Document] = {}
    for context in contexts:
        for title, text in context_paragraphs(context):
            if title not in documents:
                documents[title] = Document(id=title, title=title, text=text)
    return list(documents.values())


def corpus_from_hotpotqa_file(path: str | Path) -> list[Document]:
    """Build a corpus from a HotpotQA JSON array or JSONL file (every record needs `context`)."""
    path = Path(path)
    records = _read_json_or_jsonl(path)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "context" not in record:
            raise DataError(path, "expected an object with a 'context'", line=number, field="context")
    documents = corpus_from_contexts(r["context"] for r in records)
    if not documents:
        raise DataError(path, "no paragraphs found in the contexts")
    return documents


def _read_json_or_jsonl(path: Path) -> list[Any]:
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix == ".jsonl":
        return [record for _, record in iter_jsonl(path)]
    data = read_json_file(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON array of records, got {type(data).__name__}")
    return data


def corpus_hash(documents: Iterable[Document]) -> str:
    """A SHA-256 over the documents' ids, titles and texts, in order.

    >>> corpus_hash([Document("a", "A", "x")]) == corpus_hash([Document("a", "A", "x")])
    True
    >>> corpus_hash([Document("a", "A", "x")]) == corpus_hash([Document("a", "A", "y")])
    False
    """
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(json.dumps([doc.id, doc.title, doc.text], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
