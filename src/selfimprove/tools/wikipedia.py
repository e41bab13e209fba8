"""Online Wikipedia search (optional): the summary of the best-matching pages, as Araft used.

One MediaWiki API request per query (`generator=search` + `prop=extracts&exintro`): the intro
("summary") of the top `k` pages, newlines replaced by spaces. Requests have a timeout and a
bounded number of retries; a query that still fails returns no hits and is counted in
`failures` (a flaky network must not kill a long agent run). Queries in a batch run on a few
threads. No caching, no rate limiting beyond that; results change as Wikipedia changes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfimprove.tools.base import Hit

DEFAULT_URL = "https://en.wikipedia.org"
USER_AGENT = "selfimprove/0.1 (research agent; https://github.com/)"


class WikipediaSearcher:
    """A Searcher backed by the MediaWiki API at `base_url`."""

    name = "wikipedia"

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 10.0, retries: int = 2, threads: int = 4):
        self.base_url, self.timeout, self.retries, self.threads = base_url.rstrip("/"), timeout, retries, threads
        self.failures = 0

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        import httpx

        with httpx.Client(timeout=self.timeout, headers={"User-Agent": USER_AGENT}) as client:
            with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
                return list(pool.map(lambda q: self._search_one(client, q, k), queries))

    def _search_one(self, client, query: str, k: int) -> list[Hit]:
        if not query.strip() or k < 1:
            return []
        params = {"action": "query", "format": "json", "generator": "search", "gsrsearch": query,
                  "gsrlimit": k, "prop": "extracts", "exintro": 1, "explaintext": 1, "exlimit": k,
                  "redirects": 1}
        for _ in range(self.retries + 1):
            try:
                response = client.get(f"{self.base_url}/w/api.php", params=params)
                response.raise_for_status()
                return pages_to_hits(response.json(), k)
            except Exception:  # noqa: BLE001 - any network/JSON failure is retried, then counted
                continue
        self.failures += 1
        return []


def pages_to_hits(payload: Any, k: int) -> list[Hit]:
    """Turn a MediaWiki `query.pages` payload into hits ordered by search rank.

    >>> pages_to_hits({"query": {"pages": {"7": {"pageid": 7, "title": "Paris", "index": 1,
    ...     "extract": "Paris is\\nthe capital."}}}}, 3)
    [Hit(id='7', title='Paris', text='Paris is the capital.', score=1.0)]
    """
    pages = payload.get("query", {}).get("pages", {}) if isinstance(payload, dict) else {}
    pages = list(pages.values()) if isinstance(pages, dict) else list(pages)
    pages.sort(key=lambda p: p.get("index", 0))
    hits = []
    for rank, page in enumerate(pages[:k]):
        text = " ".join(str(page.get("extract", "")).split())
        hits.append(Hit(str(page.get("pageid", page.get("title", ""))), str(page.get("title", "")), text,
                        1.0 / (rank + 1)))
    return hits
