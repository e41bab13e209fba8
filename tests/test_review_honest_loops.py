"""Regression tests from an independent review of issue 15 ("Honest learning loops").

Each reproduces a gap the review found in the first version (training on an eval stage's
trajectories passed the overlap check; an answer cut by the token budget counted as answered and
got an EOS; evaluation and rewards disagreed on it; tool calls TRL parsed into `tool_calls` scored
0; fingerprints depended on tool order and typographic punctuation) and now passes.
"""

from __future__ import annotations

import copy

EVAL_THEN_TRAIN_ON_ITS_TRAJECTORIES = """
name: evaltrain
description: trains on the baseline eval's own trajectories
out: runs/evaltrain
stages:
  - name: baseline
    kind: eval
    params: {task: hotpotqa, models: ["smollm2-135m"], per_level: 2, format: react, max_tokens: 16}
  - name: sft-data
    kind: convert_sft
    inputs: {trajectories: "baseline:trajectories/smollm2-135m/repeat-0.jsonl"}
  - name: sft
    kind: train_sft
    inputs: {data: "sft-data:sft.jsonl"}
    params: {model: {spec: "smollm2-135m"}, trainer: {max_steps: 1}}
  - name: after
    kind: eval
    inputs: {adapter: "sft:"}
    params: {task: hotpotqa, models: ["smollm2-135m"], per_level: 2, format: react, max_tokens: 16}
"""


def test_training_on_an_eval_stages_trajectories_is_an_overlap(tmp_path):
    from selfimprove.workflows.pipeline.overlap import check_overlap
    from selfimprove.workflows.pipeline.recipe import load_recipe

    path = tmp_path / "evaltrain.yaml"
    path.write_text(EVAL_THEN_TRAIN_ON_ITS_TRAJECTORIES, encoding="utf-8")
    report = check_overlap(load_recipe(path))
    pair = next(p for p in report.pairs if p.train == "sft" and p.eval == "after")
    assert len(pair.shared_ids) == pair.eval_size == 6
    assert not report.ok


class _Searcher:
    name = "fake"

    def search(self, queries, k):
        from selfimprove.tools.base import Hit

        return [[Hit("1", "Paris", "Paris is the capital of France.", 1.0)] for _ in queries]


def test_an_answer_cut_by_the_token_budget_stays_clipped(tiny_model_dir):
    """A last turn that ran out of tokens inside <answer> is not an answer: no EOS is added (TRL sees it clipped)."""
    from transformers import AutoTokenizer

    from selfimprove.agent.formats import get_format
    from selfimprove.agent.search_env import SearchEnvironment, SearchTool
    from selfimprove.train.rollouts import run_episodes, start_episode

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    sampled = tokenizer.encode("<answer>Paris is the capital of", add_special_tokens=False)  # out of tokens here

    def generate(sequences, max_tokens=None, stops=None):
        return [list(sampled)], [[-0.5] * len(sampled)]

    env = SearchEnvironment(get_format("xml"), [{"role": "user", "content": "q"}], SearchTool(_Searcher()), max_turns=1)
    episode = start_episode(env, tokenizer)
    run_episodes([episode], generate, tokenizer, {tokenizer.eos_token_id})
    assert episode.completion_ids == sampled  # what was sampled, nothing added: TRL sees it as clipped
    facts = episode.environment.fields()
    assert facts["answered"] is False and facts["num_parse_errors"] == 1 and facts["hit_step_limit"] is True


def test_token_f1_equals_the_agent_evaluation_on_an_unclosed_answer():
    """The evaluation (parse_turn, as the runner reads a turn cut by max_tokens) and the reward agree: 0."""
    from selfimprove.agent.formats import get_format, parse_turn
    from selfimprove.rewards.answer import token_f1
    from selfimprove.tasks import get_task

    task = get_task("hotpotqa")
    example = task.load(None)[0]
    text = "<search>q</search><information>[T] x</information><answer>" + example.answer  # ran out of tokens
    parsed = parse_turn(get_format("xml"), "<answer>" + example.answer, ran_out=True)
    assert parsed.action == "invalid"  # the runner records a parse error, not an answer
    rewarded = token_f1([[{"role": "assistant", "content": text}]], answer=[example.answer])[0]
    assert rewarded == 0.0
    closed = parse_turn(get_format("xml"), "<answer>" + example.answer + "</answer>", ran_out=True)
    assert closed.action == "answer" and task.score_answer(example, closed.argument).value == 1.0


def test_the_runner_scores_an_answer_cut_by_max_tokens_zero():
    from selfimprove.agent import AgentSettings, run_agent
    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.models.generator import Completion
    from selfimprove.tasks import get_task

    task = get_task("hotpotqa")
    examples = task.load(None)[:1]

    class CutGenerator:
        name = "cut"

        def generate(self, conversations, params):
            return [[Completion(text="<answer>" + examples[0].answer, finish_reason="length")] for _ in conversations]

    searcher = searcher_for_run("bm25", examples, None, None)
    (trajectory,) = run_agent(CutGenerator(), task, examples, searcher, "xml", AgentSettings(max_turns=1), None)
    assert trajectory.final_answer is None and trajectory.score["value"] == 0.0


def test_function_call_correct_reads_calls_trl_parsed_into_tool_calls():
    from selfimprove.rewards.answer import function_call_correct

    columns = {"example_id": ["a"], "question": ["2+2?"], "tools": ["[]"], "messages": ["[]"],
               "gold_calls": ['[{"add": {"a": [2], "b": [2]}}]']}
    parsed = [{"role": "assistant", "content": "",
               "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]}]
    assert function_call_correct()([parsed], **columns) == [1.0]


def test_function_calling_fingerprint_ignores_the_order_of_tools():
    from selfimprove.tasks import get_task

    task = get_task("function_calling")
    example = task.load(None)[0]
    other = copy.deepcopy(example.meta["tools"][0])
    other["name"] = "other_tool"
    first, second = copy.deepcopy(example), copy.deepcopy(example)
    first.meta["tools"] = [example.meta["tools"][0], other]
    second.meta["tools"] = [other, example.meta["tools"][0]]
    assert task.fingerprint(first) == task.fingerprint(second)


def test_hotpotqa_fingerprint_ignores_typographic_punctuation():
    from selfimprove.tasks import get_task
    from selfimprove.tasks.base import Example

    task = get_task("hotpotqa")
    assert task.fingerprint(Example("a", "What's the capital?", "x")) == task.fingerprint(
        Example("b", "What\u2019s the capital?", "x"))
