"""Parsing citation-grounded answers: `<snippet id=A,B>claim</snippet>` spans inside `<answer>`.

`parse_cited_answer(text, known_ids)` returns the cited claims with their ids, the uncited
stretches between them, the ids that do not occur in the tool output, and format errors (no answer,
unbalanced or nested snippet tags, a claim without ids or without text, no claim at all).
The DR Tulu citation reward (rlresearch/dr-tulu, open-instruct `search_rewards/utils/citation_utils.py`)
is built from three pieces here: `scored_claims` (its `extract_claims_and_corresponding_citation_ids`:
every uncited stretch AND every cited span is a claim), `citation_format` (its `score_citation_format`)
and `citation_metrics` (its per-claim F1 averaged over claims). `snippet_ids(tool_output)` lists the
ids a tool output offers. Regular expressions over bounded text only; nothing is executed. It does
not judge whether a claim is true or supported: `selfimprove.rewards.citation` does.
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
    """The parse of one answer: cited claims, uncited stretches (whitespace-normalised, non-empty),
    ids not in the tool output, format errors, and the answer body that was parsed."""

    claims: list[Claim] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uncited_text: str = ""
    uncited: list[str] = field(default_factory=list)
    body: str = ""

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
    stretches = [" ".join(body[start:end].split()) for start, end in _gaps(spans, len(body))]
    uncited = " ".join(stretches)
    result = CitedAnswer(uncited_text=" ".join(uncited.split()), uncited=[s for s in stretches if s], body=body)
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


def scored_claims(parsed: CitedAnswer) -> list[Claim]:
    """DR Tulu's claims (`extract_claims_and_corresponding_citation_ids`): every uncited stretch
    (ids []) and every cited span with text, one claim per distinct text (a cited span replaces an
    uncited stretch of the same text, a later span an earlier one). Unlike DR Tulu, which keeps only
    the last id of `id=A,B`, a claim keeps all its ids.

    >>> parsed = parse_cited_answer("<answer>Intro. <snippet id=a,b>X is Y</snippet>. Z.</answer>")
    >>> [(c.text, c.ids) for c in scored_claims(parsed)]
    [('Intro.', []), ('. Z.', []), ('X is Y', ['a', 'b'])]
    """
    found: dict[str, list[str]] = dict.fromkeys(parsed.uncited, [])
    for claim in parsed.claims:
        if claim.text:
            found[claim.text] = claim.ids
    return [Claim(text, ids) for text, ids in found.items()]


def citation_format(claims: list[Claim], known_ids: list[str] | set[str]) -> float:
    """DR Tulu's `score_citation_format`: the share of the distinct cited ids that exist in the tool
    output; 0 when nothing is cited.

    >>> citation_format([Claim("x", ["a", "zz"]), Claim("y", ["a"]), Claim("z", [])], {"a", "b"})
    0.5
    """
    cited = {i for claim in claims for i in claim.ids}
    known = set(known_ids)
    return len(cited & known) / len(cited) if cited else 0.0


def claim_f1(recall: float, precision: float) -> float:
    """2PR / (P + R), 0 when both are 0 (DR Tulu's `score_citation_f1`).

    >>> claim_f1(0.5, 1.0)
    0.6666666666666666
    """
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def citation_metrics(judged: list[tuple[float, float]]) -> dict[str, float]:
    """Mean recall, mean precision and mean per-claim F1 over claims, from (recall, precision) per
    claim; DR Tulu's reward uses the mean F1 (`score_in_context_citations`). No claims: all 0.

    >>> citation_metrics([(1.0, 1.0), (0.0, 1.0), (0.5, 1.0)])
    {'citation_precision': 1.0, 'citation_recall': 0.5, 'citation_f1': 0.5555555555555555}
    """
    if not judged:
        return {"citation_precision": 0.0, "citation_recall": 0.0, "citation_f1": 0.0}
    count = len(judged)
    return {"citation_precision": sum(p for _, p in judged) / count,
            "citation_recall": sum(r for r, _ in judged) / count,
            "citation_f1": sum(claim_f1(r, p) for r, p in judged) / count}
