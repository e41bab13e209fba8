"""Benchmark: selfimprove's BM25 searcher (bm25s) vs rank-bm25's BM25Okapi on the same corpus and queries.

Corpus: the paragraphs of the HotpotQA contexts in the given file (about 1,000 for the shared
100-question file), indexed as "title text". Queries: the file's questions, repeated to make a
throughput run. Both sides get the SAME tokens (bm25s' tokenizer, English stopwords, lower-case),
so the comparison is of indexing + scoring + top-k, and the baseline also pays its tokenisation
inside the timed region. Reports index build time, queries/s, and top-1 / top-k agreement on the
distinct questions (rank-bm25 uses Okapi idf with an epsilon floor, bm25s uses Lucene's idf, so
small disagreements are expected and are not errors).

    python benchmarks/bench_retrieval.py [--repeats 20 --k 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa_train_100.json"


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def load_corpus_and_questions(data: Path) -> tuple[list, list[str]]:
    from selfimprove.tools.corpus import corpus_from_hotpotqa_file

    questions = [row["question"] for row in json.loads(Path(data).read_text(encoding="utf-8"))]
    return corpus_from_hotpotqa_file(data), questions


def run_selfimprove(documents: list, queries: list[str], k: int) -> tuple[float, float, list[list[str]]]:
    """(build seconds, search seconds, top-k doc ids per query) with `BM25Searcher`."""
    from selfimprove.tools.bm25 import BM25Searcher

    start = time.perf_counter()
    searcher = BM25Searcher.build(documents)
    built = time.perf_counter()
    hits = searcher.search(queries, k)
    searched = time.perf_counter()
    return built - start, searched - built, [[h.id for h in row] for row in hits]


def run_rank_bm25(documents: list, queries: list[str], k: int) -> tuple[float, float, list[list[str]]]:
    """The same with rank_bm25.BM25Okapi: one `get_scores` + argsort per query (its documented use)."""
    import numpy as np
    from rank_bm25 import BM25Okapi

    start = time.perf_counter()
    index = BM25Okapi(tokenize([f"{d.title} {d.text}" for d in documents]))
    built = time.perf_counter()
    ids = []
    for tokens in tokenize(queries):
        scores = index.get_scores(tokens)
        top = np.argsort(-scores, kind="stable")[:k]
        ids.append([documents[i].id for i in top if scores[i] > 0])
    searched = time.perf_counter()
    return built - start, searched - built, ids


def agreement(ours: list[list[str]], theirs: list[list[str]], k: int) -> dict[str, float]:
    """Share of queries with the same top-1 document, and mean overlap of the top-k sets."""
    top1 = sum(bool(a) and bool(b) and a[0] == b[0] for a, b in zip(ours, theirs, strict=True))
    overlap = sum(len(set(a) & set(b)) / k for a, b in zip(ours, theirs, strict=True))
    return {"top1_agreement": top1 / len(ours), "topk_overlap": overlap / len(ours)}


def warm_up(documents: list, k: int) -> None:
    """Import both libraries and run each once on a slice, so one-off import costs are not timed."""
    run_selfimprove(documents[:50], ["warm up query"], k)
    run_rank_bm25(documents[:50], ["warm up query"], k)


def run(data: Path = DEFAULT_DATA, repeats: int = 20, k: int = 5) -> dict:
    documents, questions = load_corpus_and_questions(data)
    warm_up(documents, k)
    queries = questions * repeats
    ours = run_selfimprove(documents, queries, k)
    theirs = run_rank_bm25(documents, queries, k)
    n = len(questions)
    return {
        "corpus_documents": len(documents), "distinct_queries": n, "timed_queries": len(queries), "k": k,
        "selfimprove_bm25s": {"build_s": ours[0], "search_s": ours[1], "queries_per_s": len(queries) / ours[1]},
        "baseline_rank_bm25": {"build_s": theirs[0], "search_s": theirs[1], "queries_per_s": len(queries) / theirs[1]},
        "speedup_search": theirs[1] / ours[1], "speedup_build": theirs[0] / ours[0],
        "agreement": agreement(ours[2][:n], theirs[2][:n], k),
    }


def markdown(r: dict) -> list[str]:
    a, s, b = r["agreement"], r["selfimprove_bm25s"], r["baseline_rank_bm25"]
    return [
        f"{r['corpus_documents']} paragraphs, {r['timed_queries']} queries ({r['distinct_queries']} distinct), "
        f"top-{r['k']}, same bm25s tokens on both sides.", "",
        "| searcher | build s | search s | queries/s |", "|---|---|---|---|",
        f"| selfimprove BM25Searcher (bm25s) | {s['build_s']:.3f} | {s['search_s']:.3f} | {s['queries_per_s']:.0f} |",
        f"| baseline: rank-bm25 BM25Okapi | {b['build_s']:.3f} | {b['search_s']:.3f} | {b['queries_per_s']:.0f} |",
        "", f"- search speed-up over rank-bm25: **{r['speedup_search']:.1f}x** (build {r['speedup_build']:.1f}x)",
        f"- top-1 agreement {100 * a['top1_agreement']:.0f}%, top-{r['k']} overlap "
        f"{100 * a['topk_overlap']:.0f}%",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    print("\n".join(markdown(run(args.data, args.repeats, args.k))))


if __name__ == "__main__":
    main()
