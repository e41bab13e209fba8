"""The citation reward of the research refiner, as DR Tulu computes it, and the refiner's composite reward.

Reference: rlresearch/dr-tulu, `rl/open-instruct/open_instruct/search_rewards/utils/citation_utils.py`,
`score_in_context_citations` (its tags are `<cite id=...>`; the refiner's are `<snippet id=...>`).
A refined answer is one `<answer>...</answer>` block whose factual claims are wrapped as
`<snippet id=ID1,ID2>claim</snippet>`, citing ids from the search-tool output (the `tool_output`
column: text with `<snippet id=X>text</snippet>` blocks; a mapping id -> text or a list of
{id, text} also works).

- Claims (`tasks.refiner.citations.scored_claims`): every cited span AND every uncited stretch of text
  between spans, one per distinct text.
- A claim citing at least one id of the tool output (evidence = those snippets joined by a blank
  line): recall = support (1 fully, 0.5 partially, 0 no support), precision = relevance (1 / 0).
- Any other claim (uncited, or citing only unknown ids): precision = 1, recall = 0 when it is a
  factual statement that needed a citation, else 1. A stretch with no letter or digit (". ")
  needs none and is not sent to the judge.
- Claim F1 = 2PR / (P + R), averaged over claims; format = share of the distinct cited ids that
  exist in the tool output (0 when nothing is cited). reward = 0.6 F1 + 0.4 format (DR Tulu's
  weights); 0.0 when the row has no snippets or the answer has more than `max_claims` claims.

With a judge (any selfimprove Generator; replies `Score: 0|0.5|1` for support, `Verdict: yes|no`
for relevance and for "needs a citation"), the three questions are DR Tulu's judge prompts,
fenced. A judge failure or unparseable reply makes the sample a failure (None under
on_failure="skip"), where DR Tulu would score 0. Without a judge, lexical proxies answer them from
the claim's content words (3+ letters, common function words dropped): support = share found in the
evidence (>= 0.7: 1, >= 0.4: 0.5, else 0); relevant = support > 0; needs a citation = 3+ content
words, or >= 40% of them found in the tool output. These proxies cannot tell a paraphrase from a
contradiction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from selfimprove.rewards.compose import weighted_sum
from selfimprove.rewards.judge_client import (
    FENCE_RULE,
    fence,
    make_judge,
    parse_criterion_score,
    parse_yes_no,
)
from selfimprove.rewards.judge_rewards import question_of, rubric_judge
from selfimprove.rewards.text import column, completion_text, named, reward_factory
from selfimprove.tasks.refiner.citations import (
    citation_format,
    citation_metrics,
    parse_cited_answer,
    scored_claims,
)

_SNIPPET_BLOCK = re.compile(r"<snippet\s+id\s*=\s*[\"']?([^>\"']+)[\"']?\s*>(.*?)</snippet>", re.DOTALL | re.IGNORECASE)
_ALNUM = re.compile(r"\w")
MAX_CONTEXT_CHARS = 8_000  # the full response shown with a "needs a citation" question is cut here
SUPPORT_TEMPLATE = (
    "Question: {question}\n\nSnippets from the search results:\n{snippets}\n\n{rule}\nA statement from the response:\n"
    "{claim}\n\nIs the statement supported by the snippets? Use only the snippets, no outside knowledge.\n"
    "1 = fully supported: most of the statement is supported by or extracted from the snippets.\n"
    "0.5 = partially supported: more than half of it is supported, a small part is missing or contradicted.\n"
    "0 = no support: it is largely unrelated to the snippets, or most key points do not match them.\n"
    "Reply on one line: `Score: <0|0.5|1>`."
)
RELEVANCE_TEMPLATE = (
    "Question: {question}\n\nSnippets from the search results:\n{snippets}\n\n{rule}\nA statement from the response:\n"
    "{claim}\n\nDo the snippets contain some key information of the statement (some key points supported by or "
    "extracted from them)? Say no when the statement is almost unrelated to the snippets or all its key points are "
    "inconsistent with them. Use only the snippets. Reply on one line: `Verdict: yes` or `Verdict: no`."
)
NEEDS_CITATION_TEMPLATE = (
    "Question: {question}\n\n{rule}\nThe full response:\n{response}\n\nA sentence from it:\n{claim}\n\n"
    "Is this sentence a factual statement, based on the search results, that requires a citation, rather than an "
    "introductory or transition sentence, or a summary, reasoning or inference from the rest of the response? "
    "Reply on one line: `Verdict: yes` or `Verdict: no`."
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


def _share_found(claim: str, evidence: str) -> float:
    words = _words(claim)
    return len(words & _words(evidence)) / len(words) if words else 0.0


def lexical_support(claim: str, evidence: str) -> float:
    """1 / 0.5 / 0 from the share of the claim's content words (3+ letters, common function words
    dropped) found in the evidence: >= 0.7 -> 1, >= 0.4 -> 0.5, else 0.

    >>> lexical_support("Paris is the capital of France", "France's capital city is Paris.")
    1.0
    >>> lexical_support("Berlin hosts the Bundestag", "Paris is in France")
    0.0
    """
    share = _share_found(claim, evidence)
    return 1.0 if share >= 0.7 else 0.5 if share >= 0.4 else 0.0


def lexical_needs_citation(claim: str, snippets: str) -> float:
    """1.0 when an uncited stretch looks like a factual statement: 3+ content words, or >= 40% of its
    content words found in the tool output's snippets; else 0.0.

    >>> [lexical_needs_citation(t, "Paris is in France") for t in ["and", "In Paris.", "Rome hosts the Senate."]]
    [0.0, 1.0, 1.0]
    """
    return 1.0 if len(_words(claim)) >= 3 or _share_found(claim, snippets) >= 0.4 else 0.0


Request = tuple[str, str, str]  # (kind, claim, context): support / relevance / needs_citation


@dataclass
class _Sample:
    """One completion: its claims, the question, the answer body and the tool output's text."""

    question: str
    response: str
    tool_text: str
    claims: list[tuple[str, str]] = field(default_factory=list)  # (claim text, cited evidence or "")
    format: float = 0.0
    unknown_ids: int = 0
    claim_count: int = 0
    scored: bool = False  # False: the row has no snippets or the answer too many claims -> 0.0


def _plan(text: str, snippets: dict[str, str], question: str, max_claims: int) -> _Sample:
    parsed = parse_cited_answer(text, list(snippets))
    claims = scored_claims(parsed)
    sample = _Sample(question, parsed.body[:MAX_CONTEXT_CHARS], "\n".join(snippets.values()),
                     unknown_ids=len(parsed.unknown_ids), claim_count=len(claims))
    if not snippets or len(claims) > max_claims:
        return sample
    sample.scored, sample.format = True, citation_format(claims, snippets)
    sample.claims = [(c.text, "\n\n".join(snippets[i] for i in c.ids if i in snippets)) for c in claims]
    return sample


def _requests(sample: _Sample) -> list[Request]:
    """What must be asked about the sample's claims: support + relevance for a claim with evidence,
    needs_citation for any other claim that holds a letter or digit (each once)."""
    asked: list[Request] = []
    for claim, evidence in sample.claims:
        if evidence:
            asked += [("support", claim, evidence), ("relevance", claim, evidence)]
        elif _ALNUM.search(claim):
            asked.append(("needs_citation", claim, sample.response))
    return list(dict.fromkeys(asked))


def _judged(sample: _Sample, answers: dict[Request, float | None]) -> list[tuple[float, float]] | None:
    """(recall, precision) per claim, None when an answer is missing."""
    judged = []
    for claim, evidence in sample.claims:
        if evidence:
            recall, precision = answers[("support", claim, evidence)], answers[("relevance", claim, evidence)]
        elif _ALNUM.search(claim):
            need = answers[("needs_citation", claim, sample.response)]
            recall, precision = (None if need is None else 1.0 - need), 1.0
        else:
            recall, precision = 1.0, 1.0
        if recall is None or precision is None:
            return None
        judged.append((recall, precision))
    return judged


def lexical_answer(request: Request, tool_text: str) -> float:
    """The lexical proxy's answer to one (kind, claim, context) request."""
    kind, claim, context = request
    if kind == "needs_citation":
        return lexical_needs_citation(claim, tool_text)
    support = lexical_support(claim, context)
    return support if kind == "support" else float(support > 0)


JUDGE_QUESTIONS = {"support": (SUPPORT_TEMPLATE, parse_criterion_score),
                   "relevance": (RELEVANCE_TEMPLATE, parse_yes_no),
                   "needs_citation": (NEEDS_CITATION_TEMPLATE, parse_yes_no)}


def judge_answers(client, asked: list[tuple[str, Request]]) -> list[float | None]:
    """The judge's answers to (question, request) pairs: one concurrent batch per kind of question."""
    values: list[float | None] = [None] * len(asked)
    for kind, (template, parse) in JUDGE_QUESTIONS.items():
        chosen = [n for n, (_, request) in enumerate(asked) if request[0] == kind]
        prompts = [_prompt(template, asked[n][0], *asked[n][1][1:]) for n in chosen]
        for n, value in zip(chosen, client.grade(prompts, parse) if prompts else [], strict=True):
            values[n] = value
    return values


def _prompt(template: str, question: str, claim: str, context: str) -> str:
    if template is NEEDS_CITATION_TEMPLATE:
        return template.format(question=question, rule=FENCE_RULE, response=fence(context), claim=fence(claim))
    return template.format(question=question, snippets=context, rule=FENCE_RULE, claim=fence(claim))


def _questions(kwargs: dict[str, Any], size: int) -> list[str]:
    prompts = kwargs.get("prompts") or kwargs.get("prompt") or [None] * size
    questions = kwargs.get("question") or [None] * size
    return [question_of(p, q) for p, q in zip(prompts, questions, strict=True)]


PARTS = ("citation_precision", "citation_recall", "citation_f1", "citation_format", "unknown_ids", "claims")


def _scores(sample: _Sample, judged: list[tuple[float, float]] | None, f1_weight: float,
            format_weight: float) -> tuple[float | None, dict[str, float | None]]:
    if not sample.scored:
        zero = dict.fromkeys(PARTS[:4], 0.0)
        return 0.0, {**zero, "unknown_ids": float(sample.unknown_ids), "claims": float(sample.claim_count)}
    if judged is None:
        return None, {}
    metrics = {**citation_metrics(judged), "citation_format": sample.format, "unknown_ids": float(sample.unknown_ids),
               "claims": float(sample.claim_count)}
    return f1_weight * metrics["citation_f1"] + format_weight * sample.format, metrics


@reward_factory
def citation_reward(judge: Any = None, snippets_column: str = "tool_output", f1_weight: float = 0.6,
                    format_weight: float = 0.4, max_claims: int = 100, name: str = "citation", **judge_options: Any):
    """Factory: DR Tulu's citation reward, 0.6 x mean claim F1 + 0.4 x format (see the module docstring).

    One cited, supported claim scores 1; the same claim with an uncited factual sentence next to it
    scores 0.6 x (1 + 0) / 2 + 0.4 = 0.7; an uncited answer scores 0:

    >>> reward = citation_reward()
    >>> reward(["<answer><snippet id=a>Paris is in France</snippet></answer>",
    ...         "<answer><snippet id=a>Paris is in France</snippet> Rome hosts the Senate</answer>",
    ...         "<answer>Paris is in France</answer>"],
    ...        tool_output=["<snippet id=a>Paris is in France</snippet>"] * 3)
    [1.0, 0.7, 0.0]
    >>> reward.parts["citation_recall"]
    [1.0, 0.5, 0.0]
    """
    client = make_judge(judge, **judge_options) if judge is not None else None

    def answer(samples: list[_Sample]) -> list[dict[Request, float | None]]:
        asked = [(n, request) for n, sample in enumerate(samples) for request in _requests(sample)]
        if client is None:
            values = [lexical_answer(request, samples[n].tool_text) for n, request in asked]
        else:
            values = judge_answers(client, [(samples[n].question, request) for n, request in asked])
        answers: list[dict[Request, float | None]] = [{} for _ in samples]
        for (n, request), value in zip(asked, values, strict=True):
            answers[n][request] = value
        return answers

    def score_citations(completions, **kwargs) -> list[float | None]:
        size = len(completions)
        tools = [snippet_texts(t) for t in column(kwargs, snippets_column, size)]
        samples = [_plan(completion_text(c), t, q, max_claims)
                   for c, t, q in zip(completions, tools, _questions(kwargs, size), strict=True)]
        found = [_scores(s, _judged(s, a), f1_weight, format_weight) for s, a in zip(samples, answer(samples), strict=True)]
        score_citations.parts = {k: [metrics.get(k) for _, metrics in found] for k in PARTS}
        values = [value for value, _ in found]
        return client.settle(values, name) if client is not None else values

    return named(score_citations, name, parts={}, judge=client, stats=client.stats if client else {})


@reward_factory
def refiner_reward(judge: Any = None, citation_weight: float = 0.2, negative_mode: str = "flip",
                   static_rubrics: Any = None, static_negative_rubrics: Any = None, citation_judge: bool = True,
                   **judge_options: Any):
    """Factory: rubric judge (weight 1) + citation reward (weight `citation_weight`, 0.2 by default).

    The citation reward asks the same judge (DR Tulu's judged citation reward) unless
    `citation_judge=False`, which makes it lexical.
    """
    client = make_judge(judge, **judge_options)
    rubric = rubric_judge(client, static_rubrics, static_negative_rubrics, negative_mode)
    citation = citation_reward(client if citation_judge else None)
    return weighted_sum([(rubric, 1.0), (citation, citation_weight)], name="refiner_reward")
