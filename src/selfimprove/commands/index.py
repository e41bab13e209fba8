"""`selfimprove index build`: build a search index once from a corpus file or HotpotQA contexts."""

from __future__ import annotations

from pathlib import Path

import typer

index_app = typer.Typer(help="Build search indexes (cached by corpus content).", no_args_is_help=True)


@index_app.command("build")
def build(
    corpus: Path | None = typer.Option(None, help="Corpus JSONL with {id, title, text} per line."),
    hotpotqa: Path | None = typer.Option(None, help="HotpotQA JSON/JSONL; one document per context paragraph."),
    out: Path = typer.Option(..., "--output-dir", "--out", help="Directory to write the index to (--out for short)."),
    backend: str = typer.Option("bm25", help="bm25 or dense."),
) -> None:
    """Build (or copy from the cache) an index over a corpus and write it to OUT."""
    from selfimprove.errors import UserError
    from selfimprove.tools import build_searcher
    from selfimprove.tools.corpus import corpus_from_hotpotqa_file, load_corpus_jsonl
    from selfimprove.tools.index_store import copy_index

    if (corpus is None) == (hotpotqa is None):
        raise UserError("pass exactly one of --corpus FILE or --hotpotqa FILE")
    documents = load_corpus_jsonl(corpus) if corpus else corpus_from_hotpotqa_file(hotpotqa)
    searcher = build_searcher(backend, documents)
    copy_index(searcher.index_dir, out)
    typer.echo(f"{backend} index over {len(documents)} documents -> {out} (cached at {searcher.index_dir})")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
