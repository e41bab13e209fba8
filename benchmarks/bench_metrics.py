"""Benchmark: `selfimprove.tasks.hotpotqa_metrics.evaluate` vs the official HotpotQA script, per example.

The baseline below is `hotpot_evaluate_v1.py` (Yang et al. 2018) transcribed function for function
(normalize_answer, f1_score, exact_match_score, update_answer, update_sp, the eval loop), minus
its file I/O and its "missing answer" prints. Predictions are generated deterministically from
the gold file: exact, partial, padded, upper-cased, yes/no, wrong and missing answers, and exact,
partial, padded and missing supporting facts, so every branch of both implementations runs.
The gold file is replicated (new ids) to make a throughput run. All 12 averages must be
identical (==, not approximately): `run` raises AssertionError otherwise.

    python benchmarks/bench_metrics.py [--copies 50]
"""

from __future__ import annotations

import argparse
import json
import re
import string
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa_train_100.json"
OFFICIAL_KEYS = ("em", "f1", "prec", "recall", "sp_em", "sp_f1", "sp_prec", "sp_recall",
                 "joint_em", "joint_f1", "joint_prec", "joint_recall")


# --- the official script, per example -------------------------------------------------------

def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    normalized_prediction = official_normalize_answer(prediction)
    normalized_ground_truth = official_normalize_answer(ground_truth)
    zero_metric = (0, 0, 0)
    if normalized_prediction in ["yes", "no", "noanswer"] and normalized_prediction != normalized_ground_truth:
        return zero_metric
    if normalized_ground_truth in ["yes", "no", "noanswer"] and normalized_prediction != normalized_ground_truth:
        return zero_metric
    prediction_tokens = normalized_prediction.split()
    ground_truth_tokens = normalized_ground_truth.split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return zero_metric
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1, precision, recall


def official_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


def official_update_answer(metrics, prediction, gold):
    em = official_exact_match_score(prediction, gold)
    f1, prec, recall = official_f1_score(prediction, gold)
    metrics["em"] += float(em)
    metrics["f1"] += f1
    metrics["prec"] += prec
    metrics["recall"] += recall
    return em, prec, recall


def official_update_sp(metrics, prediction, gold):
    cur_sp_pred = set(map(tuple, prediction))
    gold_sp_pred = set(map(tuple, gold))
    tp, fp, fn = 0, 0, 0
    for e in cur_sp_pred:
        if e in gold_sp_pred:
            tp += 1
        else:
            fp += 1
    for e in gold_sp_pred:
        if e not in cur_sp_pred:
            fn += 1
    prec = 1.0 * tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = 1.0 * tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    em = 1.0 if fp + fn == 0 else 0.0
    metrics["sp_em"] += em
    metrics["sp_f1"] += f1
    metrics["sp_prec"] += prec
    metrics["sp_recall"] += recall
    return em, prec, recall


def official_eval(prediction, gold):
    metrics = dict.fromkeys(OFFICIAL_KEYS, 0)
    for dp in gold:
        cur_id = dp["_id"]
        can_eval_joint = True
        if cur_id not in prediction["answer"]:
            can_eval_joint = False
        else:
            em, prec, recall = official_update_answer(metrics, prediction["answer"][cur_id], dp["answer"])
        if cur_id not in prediction["sp"]:
            can_eval_joint = False
        else:
            sp_em, sp_prec, sp_recall = official_update_sp(metrics, prediction["sp"][cur_id], dp["supporting_facts"])
        if can_eval_joint:
            joint_prec = prec * sp_prec
            joint_recall = recall * sp_recall
            if joint_prec + joint_recall > 0:
                joint_f1 = 2 * joint_prec * joint_recall / (joint_prec + joint_recall)
            else:
                joint_f1 = 0.0
            joint_em = em * sp_em
            metrics["joint_em"] += joint_em
            metrics["joint_f1"] += joint_f1
            metrics["joint_prec"] += joint_prec
            metrics["joint_recall"] += joint_recall
    n = len(gold)
    for k in metrics.keys():
        metrics[k] /= n
    return metrics


# --- inputs -----------------------------------------------------------------------------------

def replicate_gold(rows: list[dict], copies: int) -> list[dict]:
    return [{**row, "_id": f"{row['_id']}#{c}"} for c in range(copies) for row in rows]


def predicted_answer(gold: str, i: int) -> str | None:
    """One of eight answer variants (None = no prediction), chosen by position."""
    variants = (gold, f"{gold} and more words", f"The {gold.upper()}!", "yes", "no", "unknown entity",
                gold.split()[0] if gold.split() else gold, None)
    return variants[i % len(variants)]


def predicted_facts(facts: list, i: int) -> list | None:
    variants = (facts, facts[:1], facts + [["Invented title", 3]], None, [])
    return variants[i % len(variants)]


def make_predictions(gold: list[dict]) -> dict[str, dict]:
    answers, sps = {}, {}
    for i, row in enumerate(gold):
        answer, facts = predicted_answer(row["answer"], i), predicted_facts(row["supporting_facts"], i // 3)
        if answer is not None:
            answers[row["_id"]] = answer
        if facts is not None:
            sps[row["_id"]] = facts
    return {"answer": answers, "sp": sps}


# --- the comparison --------------------------------------------------------------------------

def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def run(data: Path = DEFAULT_DATA, copies: int = 50) -> dict:
    from selfimprove.tasks.hotpotqa_metrics import evaluate

    gold = replicate_gold(json.loads(Path(data).read_text(encoding="utf-8")), copies)
    predictions = make_predictions(gold)
    official_s, official = timed(official_eval, predictions, gold)
    ours_s, ours = timed(evaluate, predictions, gold)
    mismatched = [k for k in OFFICIAL_KEYS if ours[k] != official[k]]
    assert not mismatched, f"scores differ from the official script: {mismatched}"
    return {"questions": len(gold), "identical_scores": True, "scores": {k: official[k] for k in OFFICIAL_KEYS},
            "selfimprove_evaluate": {"seconds": ours_s, "questions_per_s": len(gold) / ours_s},
            "baseline_official_per_example": {"seconds": official_s, "questions_per_s": len(gold) / official_s},
            "speedup": official_s / ours_s}


def markdown(r: dict) -> list[str]:
    s, b, scores = r["selfimprove_evaluate"], r["baseline_official_per_example"], r["scores"]
    return [
        f"{r['questions']} questions (the gold file replicated), mixed correct/partial/wrong/missing predictions.", "",
        "| implementation | seconds | questions/s |", "|---|---|---|",
        f"| selfimprove `hotpotqa_metrics.evaluate` (+ by-level/by-type) | {s['seconds']:.3f} | {s['questions_per_s']:.0f} |",
        f"| baseline: official hotpot_evaluate_v1 per example | {b['seconds']:.3f} | {b['questions_per_s']:.0f} |",
        "", f"- speed-up over the official script: **{r['speedup']:.2f}x**",
        f"- all 12 averages identical (==): **{r['identical_scores']}** (em {scores['em']:.4f}, "
        f"f1 {scores['f1']:.4f}, sp_f1 {scores['sp_f1']:.4f}, joint_f1 {scores['joint_f1']:.4f})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", type=int, default=50)
    args = parser.parse_args()
    print("\n".join(markdown(run(args.data, args.copies))))


if __name__ == "__main__":
    main()
