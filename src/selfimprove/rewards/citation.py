"""The citation reward of the research refiner (DR Tulu style), and the refiner's composite reward.

A refined answer is one `<answer>...</answer>` block in which factual claims are wrapped as
`<snippet id=ID1,ID2>claim</snippet>`, citing ids from the search-tool output (the `tool_output`
column, as the refiner task's `to_row` writes it: text with `<snippet id=X>text</snippet>`
blocks; a mapping id -> text or a list of {id, text} also works). Claims and format errors come
from `selfimprove.tasks.citations.parse_cited_answer`; precision/recall/F1 from its
`citation_metrics` (per (claim, snippet) support: 1 full, 0.5 partial, 0 none; an id missing
from the tool output supports nothing and is a format error). Support labels come from a judge
(any selfimprove Generator; only the cited snippets are labelled unless `label_all`) or, with no
judge, from lexical overlap: the share of the claim's content words found in the snippet
(>= 0.7: 1, >= 0.4: 0.5, else 0; every snippet is labelled, so recall sees what was not cited).
format = the parse is valid (at least one claim, no errors). reward = f1_weight * F1 +
format_weight * format (0.8 / 0.2 by default). Lexical support is a cheap proxy: it cannot tell
a paraphrase from a contradiction.
"""

from __future__ import annotations

import re
from typing import Any

from selfimprove.rewards.compose import weighted_sum
from selfimprove.rewards.judge import FENCE_RULE, fence, make_judge, parse_criterion_score
from selfimprove.rewards.judged import rubric_judge
from selfimprove.rewards.text import column, completion_text, named, reward_factory
from selfimprove.tasks.citations import citation_metrics, parse_cited_answer

_SNIPPET_BLOCK = re.compile(r"<snippet\s+id\s*=\s*[\"']?([^>\"']+)[\"']?\s*>(.*?)</snippet>", re.DOTALL | re.IGNORECASE)
SUPPORT_TEMPLATE = (
    "Snippet:\n{snippets}\n\nClaim (as written in the response):\n{rule}\n{claim}\n\n"
    "Does the snippet support the claim? 1 = fully, 0.5 = partly, 0 = not. Reply on one line: `Score: <0|0.5|1>`."
)


def snippet_texts(value: Any) -> dict[str, str]:
    """id -> text from the tool output in any accepted form.

    >>> snippet_texts('<snippet id=a1>Paris is in France.</snippet> <snippet id="b2">x</snippet>')
    {'a1': 'Paris is in France.', 'b2': 'x'}
    >>> snippet_texts([{"id": 3, "text": "t"}])
    {'3': 't'}
    """
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {str(s.get("id", s.get("snippet_id"))): str(s.get("text", s.get("content", ""))) for s in value
                if isinstance(s, dict)}
    return {i.strip(): t.strip() for i, t in _SNIPPET_BLOCK.findall(str(value or ""))}


_STOPWORDS = frozenset("the and was were for with that this are has have had from its into been not but which who "
                       "whom what when where his her their they them there than then also".split())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def lexical_support(claim: str, evidence: str) -> float:
    """1 / 0.5 / 0 from the share of the claim's content words (3+ letters, common function words
    dropped) found in the evidence: >= 0.7 -> 1, >= 0.4 -> 0.5, else 0.

    >>> lexical_support("Paris is the capital of France", "France's capital city is Paris.")
    1.0
    >>> lexical_support("Berlin hosts the Bundestag", "Paris is in France")
    0.0
    """
    words = _words(claim)
    if not words:
        return 0.0
    share = len(words & _words(evidence)) / len(words)
    return 1.0 if share >= 0.7 else 0.5 if share >= 0.4 else 0.0


def lexical_labels(pairs: list[tuple[str, str]]) -> list[float]:
    """`lexical_support` for each (claim, snippet text) pair."""
    return [lexical_support(claim, evidence) for claim, evidence in pairs]


def citation_scores(text: str, snippets: dict[str, str], label_pairs, label_all: bool = True) -> dict[str, float]:
    """Citation precision/recall/F1 (`tasks.citations.citation_metrics`), format and unknown ids.

    `label_pairs([(claim, snippet text), ...]) -> [float | None, ...]` labels how well each snippet
    supports each claim (`lexical_labels`, or a judge); with `label_all` every snippet is labelled for every claim (recall then sees the snippets a
    claim should have cited), else only the cited ones. An empty dict means a label failed.

    >>> s = citation_scores("<answer><snippet id=a>Paris is in France</snippet>. It is big.</answer>",
    ...                     {"a": "Paris is a city in France", "b": "Tokyo is in Japan"}, lexical_labels)
    >>> s["citation_precision"], s["citation_recall"], s["citation_format"]
    (1.0, 1.0, 1.0)
    """
    parsed = parse_cited_answer(text, list(snippets))
    wanted = [(n, i) for n, claim in enumerate(parsed.claims)
              for i in (snippets if label_all else [i for i in claim.ids if i in snippets])]
    values = label_pairs([(parsed.claims[n].text, snippets[i]) for n, i in wanted])
    if any(v is None for v in values):
        return {}
    labels: list[dict[str, float]] = [{} for _ in parsed.claims]
    for (n, snippet_id), value in zip(wanted, values, strict=True):
        labels[n][snippet_id] = value
    metrics = citation_metrics(parsed.claims, labels)
    metrics.update(citation_format=float(parsed.valid), unknown_ids=float(len(parsed.unknown_ids)))
    return metrics


@reward_factory
def citation_reward(judge: Any = None, snippets_column: str = "tool_output", f1_weight: float = 0.8,
                    format_weight: float = 0.2, label_all: bool | None = None, name: str = "citation",
                    **judge_options: Any):
    """Factory: claim-level citation F1 and format of a refined answer (see the module docstring).

    >>> reward = citation_reward()
    >>> reward(["<answer><snippet id=a>Paris is in France</snippet></answer>", "<answer>Paris.</answer>"],
    ...        tool_output=["<snippet id=a>Paris is in France</snippet>"] * 2)
    [1.0, 0.0]
    >>> reward.parts["citation_recall"]
    [1.0, 0.0]
    """
    client = make_judge(judge, **judge_options) if judge is not None else None
    label_every_snippet = client is None if label_all is None else label_all

    def judge_labels(pairs: list[tuple[str, str]]) -> list[float | None]:
        prompts = [SUPPORT_TEMPLATE.format(snippets=e, rule=FENCE_RULE, claim=fence(c)) for c, e in pairs]
        return client.grade(prompts, parse_criterion_score)

    def score_citations(completions, **kwargs) -> list[float | None]:
        tool_outputs = column(kwargs, snippets_column, len(completions))
        labeler = lexical_labels if client is None else judge_labels
        found = [citation_scores(completion_text(c), snippet_texts(t), labeler, label_every_snippet)
                 for c, t in zip(completions, tool_outputs, strict=True)]
        keys = ("citation_precision", "citation_recall", "citation_f1", "citation_format", "unknown_ids")
        score_citations.parts = {k: [s.get(k) for s in found] for k in keys}
        values = [f1_weight * s["citation_f1"] + format_weight * s["citation_format"] if s else None for s in found]
        return client.settle(values, name) if client is not None else values

    return named(score_citations, name, parts={}, judge=client, stats=client.stats if client else {})


@reward_factory
def refiner_reward(judge: Any = None, citation_weight: float = 0.2, negative_mode: str = "flip",
                   static_rubrics: Any = None, static_negative_rubrics: Any = None, citation_judge: bool = False,
                   **judge_options: Any):
    """Factory: rubric judge (weight 1) + citation reward (weight `citation_weight`, 0.2 by default)."""
    client = make_judge(judge, **judge_options)
    rubric = rubric_judge(client, static_rubrics, static_negative_rubrics, negative_mode)
    citation = citation_reward(client if citation_judge else None)
    return weighted_sum([(rubric, 1.0), (citation, citation_weight)], name="refiner_reward")
