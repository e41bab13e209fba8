"""The benchmark scripts stay runnable: BM25 vs rank-bm25, HotpotQA metrics vs the official script and
parser growth at tiny sizes, the official-script transcription itself, and the report writer. No timing
assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_metrics  # noqa: E402
import bench_parsers  # noqa: E402
import bench_retrieval  # noqa: E402
import run_all  # noqa: E402


@pytest.fixture()
def hotpot_file(shared_data) -> Path:
    return shared_data / "hotpotqa_train_100.json"


@pytest.fixture()
def small_hotpot_file(hotpot_file, tmp_path) -> Path:
    path = tmp_path / "hotpot_10.json"
    path.write_text(json.dumps(json.loads(hotpot_file.read_text())[:10]))
    return path


def test_retrieval_benchmark_runs_and_the_two_bm25s_mostly_agree(small_hotpot_file):
    pytest.importorskip("rank_bm25")
    result = bench_retrieval.run(small_hotpot_file, repeats=1, k=3)
    assert result["distinct_queries"] == 10 and result["timed_queries"] == 10
    assert 50 <= result["corpus_documents"] <= 120
    assert result["agreement"]["top1_agreement"] >= 0.8  # same tokens; only the idf formula differs
    assert result["selfimprove_bm25s"]["queries_per_s"] > 0 and result["speedup_search"] > 0
    assert any("rank-bm25" in line for line in bench_retrieval.markdown(result))


def test_agreement_counts_top1_and_overlap():
    assert bench_retrieval.agreement([["a", "b"], ["c"]], [["a", "x"], ["d"]], 2) == {
        "top1_agreement": 0.5, "topk_overlap": 0.25}


def test_metrics_benchmark_asserts_identical_scores(small_hotpot_file):
    result = bench_metrics.run(small_hotpot_file, copies=3)
    assert result["questions"] == 30 and result["identical_scores"] is True
    assert 0 < result["scores"]["f1"] < 1 and 0 < result["scores"]["joint_f1"] < 1  # mixed predictions
    assert any("official" in line for line in bench_metrics.markdown(result))


def test_metrics_benchmark_fails_when_scores_differ(small_hotpot_file, monkeypatch):
    from selfimprove.tasks.hotpotqa import metrics

    original = metrics.evaluate
    monkeypatch.setattr(metrics, "evaluate", lambda p, g: {**original(p, g), "sp_f1": -1.0})
    with pytest.raises(AssertionError, match="sp_f1"):
        bench_metrics.run(small_hotpot_file, copies=1)


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("The Beatles!", "beatles", (1.0, 1.0, 1.0)),
    ("yes", "no", (0, 0, 0)),
    ("Paris France", "Paris", (2 / 3, 0.5, 1.0)),
    ("unknown", "Paris", (0, 0, 0)),
])
def test_official_transcription_matches_known_values(prediction, gold, expected):
    from selfimprove.tasks.hotpotqa.official import official_f1_score

    assert official_f1_score(prediction, gold) == pytest.approx(expected)


def test_predictions_cover_every_branch(hotpot_file):
    gold = bench_metrics.replicate_gold(json.loads(hotpot_file.read_text())[:40], 1)
    predictions = bench_metrics.make_predictions(gold)
    answers = set(predictions["answer"].values())
    assert {"yes", "no"} <= answers and len(predictions["answer"]) < len(gold)  # some missing
    assert any(facts == [] for facts in predictions["sp"].values()) and len(predictions["sp"]) < len(gold)


def test_report_writer_names_baselines_and_marks_failures(tmp_path):
    report = {"date": "2026-01-01T00:00:00Z", "mode": "quick", "torch_threads": 1, "total_seconds": 3.0,
              "machine": {"processor": "x86_64", "cpu_count": 2, "cuda": False, "torch": "2",
                          "load_average_start": (1.0, 1.0, 1.0), "load_average_end": (1.0, 1.0, 1.0)},
              "sections": {"retrieval": {"error": "RuntimeError: boom"},
                           "metrics": {"questions": 1, "identical_scores": True, "speedup": 1.5,
                                       "scores": {"em": 1.0, "f1": 1.0, "sp_f1": 1.0, "joint_f1": 1.0},
                                       "selfimprove_evaluate": {"seconds": 1.0, "questions_per_s": 1.0},
                                       "baseline_official_per_example": {"seconds": 1.5, "questions_per_s": 0.7}}},
              "seconds": {"retrieval": 1.0, "metrics": 2.0}}
    run_all.write_report(report, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| 3. BM25 retrieval | - | - | FAILED |" in text and "FAILED: `RuntimeError: boom`" in text
    assert "official hotpot_evaluate_v1, per example | 1.50x; identical scores: True" in text
    assert json.loads((tmp_path / "report.json").read_text())["sections"]["retrieval"]["error"]


def test_run_all_rejects_unknown_sections_and_keeps_the_canonical_order():
    assert run_all.parse_args(["--only", "metrics,retrieval"]).only == ["retrieval", "metrics"]
    with pytest.raises(SystemExit):
        run_all.parse_args(["--only", "retreival"])


def test_parser_benchmark_covers_every_parser_and_pattern_at_both_sizes():
    result = bench_parsers.run(size=200, scale=2, repeats=1)
    assert {"extract_answer", "ReactFormat.parse", "parse_calls", "countdown.score"} <= set(result["parsers"])
    for measured in result["parsers"].values():
        assert [row["pattern"] for row in measured["patterns"]] == list(bench_parsers.PATTERNS)
        assert all(row["large_s"] > 0 and row["ratio"] > 0 for row in measured["patterns"])
    assert sum(line.startswith("| `") for line in bench_parsers.markdown(result)) == len(result["parsers"])
    written = json.loads(json.dumps(bench_parsers.compact(result)))
    assert all(list(p["ms_by_pattern"]) == list(bench_parsers.PATTERNS) for p in written["parsers"].values())


@pytest.mark.parametrize("pattern", list(bench_parsers.PATTERNS))
def test_adversarial_inputs_have_the_asked_length(pattern):
    assert len(bench_parsers.adversarial(pattern, 1000)) == 1000


def test_rl_step_benchmark_runs_its_three_cases_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    """Every case (search, countdown, rrr) and both paths run one real GRPO step; the math check replays the
    cached path's completions through both and compares TRL's losses."""
    import bench_rl_step

    out = tmp_path / "rl_step.json"
    monkeypatch.setattr(sys, "argv", ["bench_rl_step.py", "--model", str(tiny_model_dir), "--generations", "2",
                                      "--countdown-tokens", "6", "--rrr-tokens", "4", "--search-tokens", "4",
                                      "--search-turns", "2", "--no-roof", "--out", str(out)])
    bench_rl_step.main()
    result = json.loads(out.read_text())
    for case in ("search", "countdown", "rrr"):
        assert result[case]["trl"]["generated_tokens"] > 0 and result[case]["cached"]["generated_tokens"] > 0
        assert result[case]["speedup_vs_trl"] > 0 and result[case]["math_check"]["same_prompt"]
        assert result[case]["loss_abs_diff"] <= 1e-5


def test_decode_benchmark_runs_both_sides_and_the_floor_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    import bench_decode

    out = tmp_path / "decode.json"
    monkeypatch.setattr(sys, "argv", ["bench_decode.py", "--model", str(tiny_model_dir), "--batches", "2,3",
                                      "--tokens", "5", "--rounds", "1", "--no-roof", "--out", str(out)])
    bench_decode.main()
    result = json.loads(out.read_text())
    for rows in (2, 3):
        entry = result[f"batch_{rows}"]
        assert entry["cached"]["tokens_per_s"] > 0 and entry["generate"]["tokens_per_s"] > 0
        assert entry["floor_step_ms"] > 0 and entry["linear_ms"] > 0 and entry["cached_vs_generate"] > 0
