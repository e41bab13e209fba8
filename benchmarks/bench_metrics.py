"""Benchmark: `selfimprove.tasks.hotpotqa.metrics.evaluate` vs the official HotpotQA script, per example.

The baseline is `hotpot_evaluate_v1.py` (Yang et al. 2018) transcribed function for function in
`selfimprove.tasks.hotpotqa.official`
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
import time
from pathlib import Path

from selfimprove.tasks.hotpotqa.official import official_eval  # the baseline, per example

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa_train_100.json"
OFFICIAL_KEYS = ("em", "f1", "prec", "recall", "sp_em", "sp_f1", "sp_prec", "sp_recall",
                 "joint_em", "joint_f1", "joint_prec", "joint_recall")


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
    from selfimprove.tasks.hotpotqa.metrics import evaluate

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
        f"| selfimprove `hotpotqa.metrics.evaluate` (+ by-level/by-type) | {s['seconds']:.3f} | {s['questions_per_s']:.0f} |",
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
