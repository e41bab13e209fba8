"""Judged rewards: LLM-judge correctness and a rubric judge, built on `selfimprove.rewards.judge_client.Judge`.

- `llm_judge_correctness(judge=...)`: asks whether the response's answer matches the gold
  `answer` column; 1.0 yes, 0.0 no, None (counted) when the judge failed or said something
  unparseable.
- `rubric_judge(judge=...)`: scores each criterion in {0, 0.5, 1}. Criteria are the row's
  `positive_rubrics` / `negative_rubrics` columns (strings or dicts with a `description` and
  optional `weight`) plus static ones given as parameters. Two conventions for negative rubrics
  (see `combine_rubric_scores`): "flip" (s -> 1 - s, weighted mean, in [0, 1]) and "signed"
  (DR Tulu: weight -1, S = sum(w*s) / max(sum of positive w, 1), in [-n, 1]). If any criterion of
  a sample fails, the sample is a failure (None under on_failure="skip").
Every judged reward exposes `.judge` and `.stats` (the judge's counters) and, when TRL passes
`log_metric`, logs `judge/<name>/failures` and `judge/<name>/cache_hits` each call.
"""

from __future__ import annotations

import json
from typing import Any

from selfimprove.errors import ConfigError
from selfimprove.rewards.answer import final_answers
from selfimprove.rewards.judge_client import (
    FENCE_RULE,
    Judge,
    fence,
    make_judge,
    parse_criterion_score,
    parse_yes_no,
)
from selfimprove.rewards.text import column, completion_text, named, reward_factory

CORRECTNESS_SYSTEM = "You are a strict grader. You compare a response's final answer with a gold answer."
CORRECTNESS_TEMPLATE = (
    "Question: {question}\nGold answer: {gold}\n\n{rule}\n{response}\n\n"
    "Does the response give an answer equivalent to the gold answer? Reply on one line: `Verdict: yes` or `Verdict: no`."
)
RUBRIC_SYSTEM = "You are a careful grader. You judge one criterion at a time."
RUBRIC_TEMPLATE = (
    "Question: {question}\nCriterion: {criterion}\n\n{rule}\n{response}\n\n"
    "How well does the response meet the criterion? 1 = fully, 0.5 = partly, 0 = not at all. "
    "Reply on one line: `Score: 0`, `Score: 0.5` or `Score: 1`."
)


def question_of(row_prompt: Any, question: Any = None) -> str:
    """The question: the `question` column if any, else the last user message of the prompt.

    >>> question_of([{"role": "system", "content": "s"}, {"role": "user", "content": "Who?"}])
    'Who?'
    """
    if question:
        return str(question)
    if isinstance(row_prompt, list):
        users = [m.get("content", "") for m in row_prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return "" if row_prompt is None else str(row_prompt)


def _questions(kwargs: dict[str, Any], size: int) -> list[str]:
    prompts = kwargs.get("prompts") or kwargs.get("prompt") or [None] * size
    questions = kwargs.get("question") or [None] * size
    return [question_of(p, q) for p, q in zip(prompts, questions, strict=True)]


def _log_judge(kwargs: dict[str, Any], name: str, judge: Judge, before: dict[str, int]) -> None:
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):
        for key in ("failures", "garbage", "cache_hits", "timeouts"):
            log_metric(f"judge/{name}/{key}", float(judge.stats[key] - before[key]))


@reward_factory
def llm_judge_correctness(judge: Any = None, grade: str = "answer", answer_column: str = "answer",
                          name: str = "llm_judge_correctness", **judge_options: Any):
    """Factory: 1.0 when the judge says the response's answer matches the gold, 0.0 when it says not.

    `judge` is a model spec, a Generator or a Judge; `grade` is "answer" (the extracted answer is
    shown to the judge; a completion without a final answer scores 0 and the judge is not asked) or
    "completion" (the whole completion). Judge options: max_workers,
    timeout_s, retries, budget_s, on_failure ("skip" -> None, "fail" -> raise), max_tokens, cache.
    """
    if grade not in ("answer", "completion"):
        raise ConfigError(f"llm_judge_correctness grade must be 'answer' or 'completion', got '{grade}'")
    client = make_judge(judge, **judge_options)

    def judge_correctness(completions, **kwargs) -> list[float | None]:
        golds = column(kwargs, answer_column, len(completions))
        answers = final_answers(completions, kwargs) if grade == "answer" else [completion_text(c) for c in completions]
        asked = [i for i, shown in enumerate(answers) if shown is not None]
        questions = _questions(kwargs, len(completions))
        prompts = [CORRECTNESS_TEMPLATE.format(question=questions[i], gold=golds[i], rule=FENCE_RULE,
                                               response=fence(answers[i])) for i in asked]
        before = dict(client.stats)
        verdicts = client.grade(prompts, parse_yes_no, CORRECTNESS_SYSTEM) if prompts else []
        judged = dict(zip(asked, client.settle(verdicts, name), strict=True))
        _log_judge(kwargs, name, client, before)
        return [judged.get(i, 0.0) for i in range(len(completions))]  # no final answer: 0, the judge is not asked

    return named(judge_correctness, name, judge=client, stats=client.stats)


def rubric_items(value: Any) -> list[tuple[str, float]]:
    """(criterion, weight) pairs from a list of strings/dicts, a JSON string of one, or None.

    >>> rubric_items(['cites a source', {"description": "names the year", "weight": 2}])
    [('cites a source', 1.0), ('names the year', 2.0)]
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else [value]
    items = []
    for item in value:
        if isinstance(item, dict):
            text = item.get("description") or item.get("criterion") or item.get("rubric") or item.get("title") or ""
            items.append((str(text), float(item.get("weight", 1.0))))
        else:
            items.append((str(item), 1.0))
    return items


def combine_rubric_scores(positive: list[tuple[float, float]], negative: list[tuple[float, float]],
                          mode: str = "flip") -> float:
    """Combine (weight, score) pairs of positive and negative rubrics into one reward.

    flip: sum(w*s) over positives + sum(w*(1-s)) over negatives, divided by the sum of weights.
    signed (DR Tulu): negatives get weight -w: S = (sum w*s - sum w_neg*s_neg) / max(sum positive w, 1).

    >>> combine_rubric_scores([(1, 1.0), (1, 0.5)], [(1, 1.0)], "flip")
    0.5
    >>> combine_rubric_scores([(1, 1.0), (1, 0.5)], [(1, 1.0)], "signed")
    0.25
    """
    if mode == "flip":
        total = sum(w for w, _ in positive) + sum(w for w, _ in negative)
        got = sum(w * s for w, s in positive) + sum(w * (1 - s) for w, s in negative)
        return got / total if total else 0.0
    if mode == "signed":
        got = sum(w * s for w, s in positive) - sum(w * s for w, s in negative)
        return got / max(sum(w for w, _ in positive), 1.0)
    raise ConfigError(f"rubric negative_mode must be 'flip' or 'signed', got '{mode}'")


@reward_factory
def rubric_judge(judge: Any = None, static_rubrics: Any = None, static_negative_rubrics: Any = None,
                 negative_mode: str = "flip", name: str = "rubric_judge", **judge_options: Any):
    """Factory: a judge scores each rubric criterion in {0, 0.5, 1}; combined by `combine_rubric_scores`."""
    combine_rubric_scores([], [], negative_mode)
    client = make_judge(judge, **judge_options)
    static_pos, static_neg = rubric_items(static_rubrics), rubric_items(static_negative_rubrics)

    def judge_rubrics(completions, **kwargs) -> list[float | None]:
        size = len(completions)
        positives = [rubric_items(v) + static_pos for v in column(kwargs, "positive_rubrics", size, required=False)]
        negatives = [rubric_items(v) + static_neg for v in column(kwargs, "negative_rubrics", size, required=False)]
        questions = _questions(kwargs, size)
        before = dict(client.stats)
        requests = [(i, sign, w, RUBRIC_TEMPLATE.format(question=questions[i], criterion=text, rule=FENCE_RULE,
                                                        response=fence(completion_text(completions[i]))))
                    for i in range(size) for sign, items in (("+", positives[i]), ("-", negatives[i]))
                    for text, w in items]
        values = client.grade([r[3] for r in requests], parse_criterion_score, RUBRIC_SYSTEM)
        scores = client.settle(_per_sample(size, requests, values, negative_mode), name)
        _log_judge(kwargs, name, client, before)
        return scores

    return named(judge_rubrics, name, judge=client, stats=client.stats)


def _per_sample(size: int, requests: list[tuple], values: list[float | None], mode: str) -> list[float | None]:
    pos: list[list] = [[] for _ in range(size)]
    neg: list[list] = [[] for _ in range(size)]
    failed = set()
    for (i, sign, weight, _), value in zip(requests, values, strict=True):
        if value is None:
            failed.add(i)
        else:
            (pos if sign == "+" else neg)[i].append((weight, value))
    return [None if i in failed else combine_rubric_scores(pos[i], neg[i], mode) for i in range(size)]
