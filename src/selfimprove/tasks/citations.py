"""Parsing citation-grounded answers: `<snippet id=A,B>claim</snippet>` spans inside `<answer>`.

`parse_cited_answer(text, known_ids)` returns the claims with their cited ids, the ids that do
not occur in the tool output, and format errors (no answer, unbalanced or nested snippet tags,
a claim without ids or without text, no claim at all). `citation_metrics` turns per-claim support
labels into claim-level citation precision/recall/F1 (DR Tulu style: 1 full, 0.5 partial, 0 none).
`snippet_ids(tool_output)` lists the ids a tool output offers. Regular expressions over bounded
text only; nothing is executed. It does not judge whether a claim is true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selfimprove.tasks.tags import last_tag_block

MAX_ANSWER_CHARS = 100_000
# Opening tags only (ids capped at 300 chars), then the next closing tag: parsing stays linear
# in the text length (a `(.*?)</snippet>` regex is quadratic on many unclosed tags).
_CLAIM_OPEN = re.compile(r"<snippet\s+ids?\s*=\s*[\"']?([^>\"']{0,300})[\"']?\s*>", re.IGNORECASE)
_CLAIM_CLOSE = re.compile(r"</snippet>", re.IGNORECASE)
_SNIPPET_TAG = re.compile(r"</?snippet\b", re.IGNORECASE)
_TOOL_SNIPPET_ID = re.compile(r"<snippet\s+id\s*=\s*[\"']?([^\s>\"']+)", re.IGNORECASE)


@dataclass
class Claim:
    """One cited span: its text and the snippet ids it cites (in order, de-duplicated)."""

    text: str
    ids: list[str]


@dataclass
class CitedAnswer:
    """The parse of one answer: claims, ids not in the tool output, format errors."""

    claims: list[Claim] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uncited_text: str = ""

    @property
    def valid(self) -> bool:
        """Well formed: at least one claim and no errors (unknown ids are errors)."""
        return bool(self.claims) and not self.errors


def snippet_ids(tool_output: str) -> list[str]:
    """Ids of `<snippet id=...>` blocks in a tool output, in order.

    >>> snippet_ids('<snippet id=a1>x</snippet> <snippet id="b2">y</snippet>')
    ['a1', 'b2']
    """
    return list(dict.fromkeys(_TOOL_SNIPPET_ID.findall(tool_output or "")))


def parse_cited_answer(text: str, known_ids: list[str] | set[str] | None = None) -> CitedAnswer:
    """Claims and errors of an answer (the last `<answer>` block if there is one, else `text`).

    >>> parsed = parse_cited_answer("<answer><snippet id=S1,S9>Paris is big.</snippet></answer>", {"S1"})
    >>> [(c.text, c.ids) for c in parsed.claims], parsed.unknown_ids, parsed.valid
    ([('Paris is big.', ['S1', 'S9'])], ['S9'], False)
    """
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return CitedAnswer(errors=["answer missing or too long"])
    body = last_tag_block(text, "answer") if "<answer>" in text.lower() else text
    if body is None:
        return CitedAnswer(errors=["unclosed <answer> block"])
    spans = claim_spans(body)
    uncited = " ".join(body[start:end] for start, end in _gaps(spans, len(body)))
    result = CitedAnswer(uncited_text=" ".join(uncited.split()))
    for _, _, raw_ids, claim_text in spans:
        result.claims.append(_claim(raw_ids, claim_text, result.errors))
    if _SNIPPET_TAG.search(uncited):
        result.errors.append("unbalanced <snippet> tag")
    if not result.claims:
        result.errors.append("no <snippet id=...>claim</snippet> in the answer")
    if known_ids is not None:
        known = set(known_ids)
        cited = [i for claim in result.claims for i in claim.ids]
        result.unknown_ids = [i for i in dict.fromkeys(cited) if i not in known]
        result.errors += [f"unknown snippet id {i!r}" for i in result.unknown_ids]
    return result


def claim_spans(body: str) -> list[tuple[int, int, str, str]]:
    """(start, end, raw ids, claim text) of each `<snippet id=...>claim</snippet>`, left to right.

    >>> claim_spans("a <snippet id=S1>x</snippet> b")
    [(2, 28, 'S1', 'x')]
    """
    spans, position = [], 0
    while (opening := _CLAIM_OPEN.search(body, position)) is not None:
        close = _CLAIM_CLOSE.search(body, opening.end())
        if close is None:  # no later opening can be closed either
            break
        position = close.end()
        spans.append((opening.start(), position, opening.group(1), body[opening.end():close.start()]))
    return spans


def _gaps(spans: list[tuple[int, int, str, str]], length: int) -> list[tuple[int, int]]:
    starts = [0] + [end for _, end, _, _ in spans]
    ends = [start for start, _, _, _ in spans] + [length]
    return list(zip(starts, ends, strict=True))


def _claim(raw_ids: str, claim_text: str, errors: list[str]) -> Claim:
    ids = list(dict.fromkeys(part.strip() for part in raw_ids.split(",") if part.strip()))
    text = " ".join(claim_text.split())
    if not ids:
        errors.append(f"claim without ids: {text[:40]!r}")
    if not text:
        errors.append(f"empty claim citing {ids}")
    if _SNIPPET_TAG.search(claim_text):
        errors.append("nested <snippet> tag")
    return Claim(text, ids)


def citation_metrics(claims: list[Claim], support: list[dict[str, float]]) -> dict[str, float]:
    """Citation precision/recall/F1 from support labels aligned with `claims`.

    `support[i][id]` is how well snippet `id` supports claim i (1, 0.5, 0; unlabelled = 0).
    Precision: mean support of the cited (claim, id) pairs. Recall: per claim, the support mass
    of the cited ids over the support mass of all labelled ids, averaged over claims that have any
    supporting id.

    >>> claims = [Claim("a", ["S1", "S2"]), Claim("b", ["S3"])]
    >>> citation_metrics(claims, [{"S1": 1.0, "S4": 1.0}, {"S3": 0.5}])
    {'citation_precision': 0.5, 'citation_recall': 0.75, 'citation_f1': 0.6}
    """
    if len(support) != len(claims):
        raise ValueError(f"{len(support)} support labels for {len(claims)} claims")
    pairs = [labels.get(i, 0.0) for claim, labels in zip(claims, support, strict=True) for i in claim.ids]
    precision = sum(pairs) / len(pairs) if pairs else 0.0
    ratios = [sum(labels.get(i, 0.0) for i in claim.ids) / sum(labels.values())
              for claim, labels in zip(claims, support, strict=True) if sum(labels.values()) > 0]
    recall = sum(ratios) / len(ratios) if ratios else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"citation_precision": precision, "citation_recall": recall, "citation_f1": f1}
