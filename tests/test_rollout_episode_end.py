"""Multi-turn episodes through a REAL TRL `GRPOTrainer` step with a scripted policy.

The policy is TRL's own generation hook (`_generate_single_turn`) replaced by a script: each
prompt names a script (`script=two`), and the turn index is read from the sequence so far (one
`<information>` block per earlier search). So every episode's shape is fixed, and the tests can
check (1) the episode facts every reward receives as keyword columns, and (2) that an episode that
ends by answering (or by the model's EOS) ends with EOS, so TRL does not count it as clipped and
`mask_truncated_completions` masks only the episodes that ran out of turns or tokens.
"""

from __future__ import annotations

import math
import re

import pytest

from selfimprove.agent.formats import get_format
from selfimprove.agent.search_env import SearchEnvironment, SearchTool
from selfimprove.tools.base import Hit
from selfimprove.train.rollouts import make_rollout_func, run_episodes, start_episode

pytest.importorskip("trl")

EOS = object()  # marks "the policy samples EOS here"
SCRIPTS: dict[str, list[list]] = {
    "none": [["<answer>Paris</answer>", EOS]],  # EOS sampled right after the answer
    "one": [["<search>capital of France</search> and"], ["<answer>Paris</answer> more words"]],  # no EOS sampled
    "two": [["<search>France</search>"], ["<search>capital</search>"], ["<answer>Paris</answer>", EOS]],
    "limit": [["<search>a</search>"], ["<search>b</search>"], ["<search>c</search>"]],
    "garbled": [["no tags here"], ["<answer>Paris</answer>"]],
    "quit": [["I give up", EOS]] * 3,  # the model's own EOS, no action: a parse error each turn, never an answer
}
FACTS = {  # num_searches, num_parse_errors, answered, num_turns, hit_step_limit, queries
    "none": (0, 0, True, 1, False, []),
    "one": (1, 0, True, 2, False, ["capital of France"]),
    "two": (2, 0, True, 3, False, ["France", "capital"]),
    "limit": (3, 0, False, 3, True, ["a", "b", "c"]),
    "garbled": (0, 1, True, 2, False, []),
    "quit": (0, 3, False, 3, True, []),
}
COLUMNS = ("num_searches", "num_parse_errors", "answered", "num_turns", "hit_step_limit", "queries")


class FakeSearcher:
    name = "fake"

    def search(self, queries, k):
        return [[Hit("1", "Paris", "Paris is the capital of France.", 1.0)] for _ in queries]


def search_env(prompt, max_turns, fmt="xml"):
    return SearchEnvironment(get_format(fmt), prompt, SearchTool(FakeSearcher()), max_turns=max_turns)


class ScriptedPolicy:
    """Stands in for `GRPOTrainer._generate_single_turn`: the next turn of the sequence's script.

    The first turn starts with `<think>A</think>` or `<think>B</think>` by batch position, so the
    two episodes of a group differ in their tokens (identical episodes with opposite advantages
    would cancel to a zero gradient) but not in their facts.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def turn_ids(self, sequence: list[int], position: int) -> list[int]:
        text = self.tokenizer.decode(sequence)
        script = SCRIPTS[re.search(r"script=(\w+)", text).group(1)]
        turn = text.count("<information>")
        parts = script[turn]
        prefix = "" if turn else f"<think>{'AB'[position % 2]}</think>"
        ids = self.tokenizer.encode(prefix + parts[0], add_special_tokens=False)
        return ids + [self.tokenizer.eos_token_id] * (parts[-1] is EOS)

    def __call__(self, sequences, images, multimodal_fields, num_generations):
        return [self.turn_ids(list(s), i) for i, s in enumerate(sequences)], None


class Recorder:
    """A reward that records its keyword columns and returns 0/1 by position (variance in every group)."""

    __name__ = "recorder"

    def __init__(self):
        self.calls: list[dict] = []
        self.completions: list[list] = []

    def __call__(self, completions, **kwargs):
        self.calls.append(kwargs)
        self.completions.append(completions)
        return [float(i % 2) for i in range(len(completions))]


def run_step(tiny_model_dir, tmp_path, scripts, mask_truncated=True, spy=None, fmt="xml"):
    """One GRPO step over `scripts` (2 episodes each); returns (trainer, recorder, logged metrics, params before)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rows = [{"prompt": [{"role": "user", "content": f"script={name}"}], "script": name} for name in scripts]
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2 * len(scripts),
                      num_generations=2, max_completion_length=24, logging_steps=1, report_to="none", use_cpu=True,
                      save_strategy="no", seed=0, learning_rate=1e-2, beta=0.0, loss_type="dapo",
                      mask_truncated_completions=mask_truncated)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    recorder = Recorder()
    rollout = make_rollout_func(lambda prompt, tok: search_env(prompt, max_turns=3, fmt=fmt), "trl")  # scripted hook
    trainer = GRPOTrainer(model=model, reward_funcs=[recorder], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, rollout_func=rollout)
    trainer._generate_single_turn = ScriptedPolicy(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logged = next(entry for entry in trainer.state.log_history if "completions/clipped_ratio" in entry)
    return trainer, recorder, logged, before


def changed(model, before) -> bool:
    return any(not (p.detach() == before[n]).all() for n, p in model.named_parameters())


def test_rewards_receive_the_episode_facts_as_typed_columns(tiny_model_dir, tmp_path):
    _, recorder, _, _ = run_step(tiny_model_dir, tmp_path, list(SCRIPTS))
    (columns,) = recorder.calls
    assert len(columns["script"]) == 2 * len(SCRIPTS)
    for i, script in enumerate(columns["script"]):
        got = tuple(columns[name][i] for name in COLUMNS)
        assert got == FACTS[script], (script, got)
        assert [type(v) for v in got[:5]] == [int, int, bool, int, bool], script
        assert all(isinstance(q, str) for q in got[5])


def test_agent_rewards_score_what_the_episode_did_in_trls_shape(tiny_model_dir, tmp_path):
    """The shipped rewards, fed exactly what the trainer passed (one message per episode + the columns)."""
    from selfimprove.rewards.agent import reward_formatting, search_effort, step_limit_penalty
    from selfimprove.rewards.answer import token_f1

    _, recorder, _, _ = run_step(tiny_model_dir, tmp_path, list(SCRIPTS))
    (columns,), (completions,) = recorder.calls, recorder.completions
    assert all(isinstance(c, list) and len(c) == 1 and c[0]["role"] == "assistant" for c in completions)
    kwargs = {**columns, "answer": ["Paris"] * len(completions)}
    by_script = {}
    for name, fn in [("effort", search_effort), ("limit", step_limit_penalty(max_turns=3)),
                     ("f1", token_f1), ("format", reward_formatting)]:
        for script, value in zip(columns["script"], fn(completions, **kwargs), strict=True):
            by_script.setdefault(script, {})[name] = value
    effort = {s: by_script[s]["effort"] for s in SCRIPTS}
    assert effort["none"] == 0.0 and effort["one"] == 0.35 and effort["two"] == 0.5  # was 0.35 > 0.25 (halved)
    assert effort["limit"] == 0.0 and effort["quit"] == 0.0  # no answer, no effort reward
    assert [s for s in SCRIPTS if by_script[s]["limit"] == -1.0] == ["limit", "quit"]  # never fired before
    assert {s: by_script[s]["f1"] for s in ("limit", "quit")} == {"limit": 0.0, "quit": 0.0}
    assert by_script["garbled"]["format"] == 0.0 and by_script["two"]["format"] == 0.7


def test_answer_rewards_read_a_react_episodes_answer_action(tiny_model_dir, tmp_path, monkeypatch):
    """ReAct writes `[action: Answer, action_input: ...]`, no `<answer>` tags: the answer rewards read the rollout's
    `episode_answer` column (they read 0 for every ReAct episode before, so GRPO on ReAct had no answer signal)."""
    from selfimprove.rewards.answer import exact_match, token_f1

    react = {"react_right": [["Thought: I know.\nAction: [action: Answer, action_input: Paris]", EOS]],
             "react_wrong": [["Thought: I know.\nAction: [action: Answer, action_input: Lyon]", EOS]],
             "react_quit": [["I give up", EOS]] * 3}
    for name, script in react.items():
        monkeypatch.setitem(SCRIPTS, name, script)
    _, recorder, _, _ = run_step(tiny_model_dir, tmp_path, list(react), fmt="react")
    (columns,), (completions,) = recorder.calls, recorder.completions
    assert "<answer>" not in str(completions)
    kwargs = {**columns, "answer": ["the city of Paris"] * len(completions)}
    f1 = dict(zip(columns["script"], token_f1(completions, **kwargs), strict=True))
    assert f1["react_right"] == 0.5 and f1["react_wrong"] == 0.0 and f1["react_quit"] == 0.0
    kwargs["answer"] = ["Paris"] * len(completions)
    em = dict(zip(columns["script"], exact_match(completions, **kwargs), strict=True))
    assert em == {"react_right": 1.0, "react_wrong": 0.0, "react_quit": 0.0}


def test_a_dataset_column_named_like_the_rollouts_answer_is_not_taken_for_the_models_answer():
    """Single-turn GRPO hands the rewards every dataset column: a gold column called `episode_answer` (or
    `final_answer`) must not be scored as what the model answered."""
    from selfimprove.rewards.answer import exact_match, numeric_match, token_f1

    completions, gold = ["<answer>Lyon</answer>", "no answer at all"], ["Paris", "Paris"]
    for column in ("episode_answer", "final_answer"):
        assert exact_match(completions, answer=gold, **{column: gold}) == [0.0, 0.0]
        assert token_f1(completions, answer=gold, **{column: gold}) == [0.0, 0.0]
        assert numeric_match()(["<answer>7</answer>"], answer=["42"], **{column: ["42"]}) == [0.0]


def test_answered_episodes_are_not_clipped_and_train_under_mask_truncated(tiny_model_dir, tmp_path):
    trainer, _, logged, before = run_step(tiny_model_dir, tmp_path, ["none", "one", "two", "garbled"])
    assert logged["completions/clipped_ratio"] == 0.0  # was 1.0: the EOS after </answer> was dropped
    assert logged["grad_norm"] > 0  # was 0: every answered episode was masked as truncated
    assert changed(trainer.model, before)


def test_only_episodes_that_run_out_of_turns_are_clipped_and_masked(tiny_model_dir, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    seen = []
    original = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = original(self, inputs)
        seen.append(([row["script"] for row in inputs], output))
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    trainer, _, logged, _ = run_step(tiny_model_dir, tmp_path, ["none", "limit", "quit", "one"])
    assert logged["completions/clipped_ratio"] == 0.25  # only the two "limit" episodes of eight
    scripts, output = seen[0]
    loss_mask = output["completion_mask"] * output["tool_mask"]
    eos = trainer.processing_class.eos_token_id
    for script, ids, mask in zip(scripts, output["completion_ids"].tolist(), loss_mask.tolist(), strict=True):
        trained = [t for t, m in zip(ids, mask, strict=True) if m]
        if script == "limit":
            assert trained == []  # masked as truncated: it ran out of turns
        else:
            assert ids[ids.index(eos) if eos in ids else -1] == eos, script  # ends with EOS: not clipped
            sampled_eos = SCRIPTS[script][-1][-1] is EOS
            assert (trained[-1] == eos) == sampled_eos, script  # an EOS is trained only where it was sampled


def test_episode_end_keeps_a_sampled_eos_or_appends_one_with_nan_logprob(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    eos = tokenizer.eos_token_id
    answer = tokenizer.encode("<answer>Paris</answer>", add_special_tokens=False)
    tail = tokenizer.encode(" more", add_special_tokens=False)
    limit = tokenizer.encode("<search>a</search>", add_special_tokens=False)
    outputs = {"sampled": answer + [eos], "appended": answer + tail, "clipped": limit}

    def generate(sequences, max_tokens=None, stops=None):
        ids = [outputs[name] for name in names]
        return ids, [[-0.5] * len(x) for x in ids]

    names = list(outputs)
    episodes = [start_episode(search_env([{"role": "user", "content": "q"}], max_turns=1), tokenizer) for _ in names]
    run_episodes(episodes, generate, tokenizer, {eos})
    sampled, appended, clipped = episodes
    assert sampled.completion_ids == answer + [eos] and sampled.logprobs == [-0.5] * (len(answer) + 1)
    assert appended.completion_ids == answer + [eos] and appended.env_mask == [1] * len(answer) + [0]  # not sampled
    assert appended.logprobs[:-1] == [-0.5] * len(answer) and math.isnan(appended.logprobs[-1])
    assert clipped.completion_ids == outputs["clipped"] and clipped.completion_ids[-1] != eos
