"""HotpotQA metrics, reproducing the official `hotpot_evaluate_v1.py` (Yang et al. 2018).

Answer EM/F1/precision/recall with the official normalisation (lower-case, strip punctuation and
articles, squeeze whitespace) and the official yes/no/noanswer rule (if either side normalises to
one of those and they differ, all three are 0); supporting-fact EM/F1/precision/recall over sets
of (title, sentence index); joint metrics (products of answer and sp precision/recall). `evaluate`
averages over ALL gold questions, so a missing prediction counts 0 (as in the official script),
and adds per-level and per-type breakdowns (`by_level`, `by_type`, each with `count`). It
guarantees numerical equality with the official script on the same inputs (tested), nothing more.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

ANSWER_KEYS = ("em", "f1", "prec", "recall")
SP_KEYS = ("sp_em", "sp_f1", "sp_prec", "sp_recall")
JOINT_KEYS = ("joint_em", "joint_f1", "joint_prec", "joint_recall")
METRIC_KEYS = ANSWER_KEYS + SP_KEYS + JOINT_KEYS
_SPECIAL_ANSWERS = ("yes", "no", "noanswer")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Official normalisation.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """1.0 when the normalised strings are equal.

    >>> exact_match_score("the Beatles", "Beatles")
    1.0
    """
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> tuple[float, float, float]:
    """Token F1, precision, recall (official yes/no/noanswer rule included).

    >>> f1_score("Paris France", "Paris")
    (0.6666666666666666, 0.5, 1.0)
    >>> f1_score("yes", "yes it is")
    (0, 0, 0)
    """
    pred, gold = normalize_answer(prediction), normalize_answer(ground_truth)
    if pred != gold and (pred in _SPECIAL_ANSWERS or gold in _SPECIAL_ANSWERS):
        return 0, 0, 0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0, 0, 0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall


def answer_metrics(prediction: str, ground_truth: str) -> dict[str, float]:
    """em, f1, prec, recall for one answer."""
    f1, prec, recall = f1_score(prediction, ground_truth)
    return {"em": exact_match_score(prediction, ground_truth), "f1": f1, "prec": prec, "recall": recall}


def supporting_fact_metrics(prediction: Iterable, gold: Iterable) -> dict[str, float]:
    """sp_em, sp_f1, sp_prec, sp_recall over sets of (title, sentence index).

    >>> supporting_fact_metrics([["A", 0], ["B", 1]], [["A", 0], ["C", 2]])["sp_f1"]
    0.5
    """
    predicted, expected = set(map(tuple, prediction)), set(map(tuple, gold))
    tp = len(predicted & expected)
    fp, fn = len(predicted - expected), len(expected - predicted)
    prec = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    return {"sp_em": 1.0 if fp + fn == 0 else 0.0, "sp_f1": f1, "sp_prec": prec, "sp_recall": recall}


def joint_metrics(answer: Mapping[str, float], sp: Mapping[str, float]) -> dict[str, float]:
    """joint_em/f1/prec/recall from one question's answer and supporting-fact metrics."""
    prec = answer["prec"] * sp["sp_prec"]
    recall = answer["recall"] * sp["sp_recall"]
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    return {"joint_em": answer["em"] * sp["sp_em"], "joint_f1": f1, "joint_prec": prec, "joint_recall": recall}


def question_metrics(predictions: Mapping[str, Any], gold: Mapping[str, Any]) -> dict[str, float]:
    """All 12 metrics for one gold question {_id, answer, supporting_facts}; missing parts are 0."""
    qid = gold["_id"]
    metrics = dict.fromkeys(METRIC_KEYS, 0.0)
    answers, sps = predictions.get("answer", {}), predictions.get("sp", {})
    if qid in answers:
        metrics.update(answer_metrics(answers[qid], gold["answer"]))
    if qid in sps:
        metrics.update(supporting_fact_metrics(sps[qid], gold["supporting_facts"]))
    if qid in answers and qid in sps:
        metrics.update(joint_metrics(metrics, metrics))
    return metrics


def evaluate(predictions: Mapping[str, Any], gold_examples: Iterable[Any]) -> dict[str, Any]:
    """Official averages over all gold questions plus `by_level`/`by_type` breakdowns.

    `predictions` is the official format {"answer": {id: text}, "sp": {id: [[title, idx]]}};
    `gold_examples` are `Example`s from `HotpotQATask.load` or original-layout dicts.

    >>> gold = [{"_id": "q", "answer": "yes", "supporting_facts": [["T", 0]], "level": "easy", "type": "comparison"}]
    >>> result = evaluate({"answer": {"q": "yes"}, "sp": {"q": [["T", 0]]}}, gold)
    >>> result["joint_em"], result["by_level"]["easy"]["count"], result["missing_answer"]
    (1.0, 1, 0)
    """
    rows = [_gold_record(example) for example in gold_examples]
    per_question = [question_metrics(predictions, row) for row in rows]
    result: dict[str, Any] = _average(per_question)
    result["count"] = len(rows)
    result["missing_answer"] = sum(row["_id"] not in predictions.get("answer", {}) for row in rows)
    result["missing_sp"] = sum(row["_id"] not in predictions.get("sp", {}) for row in rows)
    for key in ("level", "type"):
        result[f"by_{key}"] = _grouped(rows, per_question, key)
    return result


def _gold_record(example: Any) -> dict[str, Any]:
    if isinstance(example, Mapping):
        return {"_id": example["_id"], "answer": example["answer"], "supporting_facts": example["supporting_facts"],
                "level": example.get("level"), "type": example.get("type")}
    meta = example.meta
    return {"_id": example.id, "answer": example.answer, "supporting_facts": meta.get("supporting_facts", []),
            "level": meta.get("level"), "type": meta.get("type")}


def _average(per_question: list[dict[str, float]]) -> dict[str, float]:
    count = len(per_question)
    return {key: (sum(m[key] for m in per_question) / count if count else 0.0) for key in METRIC_KEYS}


def _grouped(rows: list[dict[str, Any]], per_question: list[dict[str, float]], key: str) -> dict[str, Any]:
    groups: dict[str, list[dict[str, float]]] = {}
    for row, metrics in zip(rows, per_question, strict=False):
        groups.setdefault(str(row.get(key) or "unknown"), []).append(metrics)
    return {name: {**_average(items), "count": len(items)} for name, items in sorted(groups.items())}
