"""Parity of the two episode drivers: one scripted policy through the text loop and the token driver.

For every environment (search in each agent format, single-turn, reflect-retry) and episode shape
(answer after searches, a repeated query, an unparseable turn, a turn ended by EOS without an
action, the step limit, a turn cut by its token budget, `on_parse_error: end`), the same policy
plays the same episode through `agent.loop.drive_text` (text, as eval/distill do) and
`train.rollouts.run_episodes` (token ids, as GRPO does). The test asserts the same episode facts,
the same observations, that the token sequence shows the model exactly the text the text loop's
last prompt shows (environment tokens masked, model tokens not), and that the completion ends with
EOS exactly when the episode answered.
"""

from __future__ import annotations

import json
import re

import pytest

from selfimprove.agent.environment import TurnSpec
from selfimprove.agent.formats import get_format
from selfimprove.agent.loop import drive_text
from selfimprove.agent.reflect_retry import REFLECTION, ReflectRetryEnvironment, reflection_conversation
from selfimprove.agent.search_env import SearchEnvironment, SearchTool
from selfimprove.agent.single_turn import SingleTurnEnvironment
from selfimprove.models.generator import Completion, SamplingParams, cut_at_stop
from selfimprove.tools.base import Hit
from selfimprove.train.rollouts import Episode, Lockstep, render, run_episodes, start_episode

MARK = "@@"  # every scripted turn writes it once: the count in the context is the turn index


def search_turn(fmt: str, query: str) -> str:
    if fmt == "react":
        return f"Thought: {MARK} look\nAction: [action: Search, action_input: {query}]"
    if fmt == "xml":
        return f"<think>{MARK} look</think>\n<search>{query}</search>"
    return f"{MARK} look\n<tool_call>\n" + json.dumps({"name": "search", "arguments": {"query": query}}) + "\n</tool_call>"


def answer_turn(fmt: str, answer: str) -> str:
    if fmt == "react":
        return f"Thought: {MARK} done\nAction: [action: Answer, action_input: {answer}]"
    if fmt == "xml":
        return f"<think>{MARK} done</think>\n<answer>{answer}</answer>"
    return f"{MARK} done <answer>{answer}</answer>"


def garbled(fmt: str) -> str:
    """An unparseable turn that still ends on one of the format's stop strings."""
    return {"react": f"Thought: {MARK} hmm]", "xml": f"{MARK} nothing</search>",
            "tools": f"{MARK} <tool_call>\n{{not json\n</tool_call>"}[fmt]


def cut_answer(fmt: str) -> str:
    """A turn that runs out of tokens inside its answer (no stop string, no EOS)."""
    return {"react": f"Thought: {MARK} x\nAction: [action: Answer, action_input: Par",
            "xml": f"<think>{MARK}</think><answer>Par", "tools": f"{MARK} <tool_call>\n{{\"name\": \"sea"}[fmt]


def scripts(fmt: str) -> dict[str, list[tuple[str, str]]]:
    """Episode shapes: a list of (turn text, how the turn ends: "stop" (on a stop string it wrote), "eos" or
    "length"). A tools-format answer has no stop string: it ends on EOS."""
    return {
        "answer": [(search_turn(fmt, "France"), "stop"), (search_turn(fmt, "capital"), "stop"),
                   (answer_turn(fmt, "Paris"), "eos")],
        "repeat": [(search_turn(fmt, "France"), "stop"), (search_turn(fmt, "  france "), "stop"),
                   (answer_turn(fmt, "Paris") + " trailing words", "stop" if fmt != "tools" else "eos")],
        "garbled": [(garbled(fmt), "stop"), (answer_turn(fmt, "Paris"), "stop" if fmt != "tools" else "eos")],
        "eos": [(f"{MARK} I am done", "eos"), (answer_turn(fmt, "Paris"), "eos")],
        "limit": [(search_turn(fmt, "a"), "stop"), (search_turn(fmt, "b"), "stop"), (search_turn(fmt, "c"), "stop")],
        "cut": [(search_turn(fmt, "a"), "stop"), (cut_answer(fmt), "length")],
    }


class Policy:
    """The next turn of the episode's script, read off the context (script name and turn index)."""

    def __init__(self, table: dict[str, list[tuple[str, str]]]):
        self.table = table

    def __call__(self, context: str) -> tuple[str, str]:
        name = re.search(r"script=(\w+)", context).group(1)
        turns = self.table[name]
        return turns[min(context.count(MARK), len(turns) - 1)]


class TextGenerator:
    """The policy as a text Generator: stop strings applied as a real backend does."""

    name = "scripted"

    def __init__(self, policy: Policy, tokenizer):
        self.policy, self.tokenizer = policy, tokenizer

    def generate(self, conversations, params: SamplingParams):
        out = []
        for conversation in conversations:
            reply, end = self.policy(render(self.tokenizer, conversation))
            text, stop = cut_at_stop(reply, params.stop)
            finish = "length" if end == "length" and stop is None else "stop"
            out.append([Completion(text=text, finish_reason=finish, stop=stop)])
        return out


class TokenGenerator:
    """The policy as TRL's generation hook: token ids, EOS appended when the turn ends on EOS."""

    def __init__(self, policy: Policy, tokenizer):
        self.policy, self.tokenizer = policy, tokenizer
        self.contexts: list[list[int]] = []

    def __call__(self, sequences, max_tokens, stops=None):
        out = []
        for sequence in sequences:
            self.contexts.append(list(sequence))
            reply, end = self.policy(self.tokenizer.decode(sequence))
            ids = self.tokenizer.encode(reply, add_special_tokens=False)
            out.append(ids + [self.tokenizer.eos_token_id] * (end == "eos"))
        return out, None


class FakeSearcher:
    name = "fake"

    def search(self, queries, k):
        return [[Hit("1", "Paris", f"Paris is the capital of France ({q}).", 1.0)] for q in queries]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run_both(make_env, names: list[str], policy: Policy, tokenizer, sampling_stop=()):
    text_envs = [make_env(name) for name in names]
    drive_text(text_envs, TextGenerator(policy, tokenizer),
               lambda spec, turn: SamplingParams(max_tokens=spec.max_tokens or 32, stop=spec.stop))
    episodes = [start_episode(make_env(name), tokenizer) for name in names]
    eos = {tokenizer.eos_token_id}
    run_episodes(episodes, TokenGenerator(policy, tokenizer), tokenizer, eos, Lockstep(False))
    return text_envs, episodes


def assert_same_text(text_env, episode: Episode, tokenizer) -> None:
    """The token sequence shows exactly the text loop's final prompt; only model tokens are trained."""
    ids, mask = episode.completion_ids, episode.env_mask
    closed = bool(ids) and ids[-1] == tokenizer.eos_token_id
    body = ids[:-1] if closed else ids
    shown = tokenizer.decode(episode.prompt_ids + body)
    assert shown == render(tokenizer, text_env.messages())
    trained_text = tokenizer.decode([i for i, m in zip(body, mask, strict=False) if m], skip_special_tokens=True)
    assert trained_text == "".join(tokenizer.decode(t, skip_special_tokens=True) for t in episode.turns)
    if text_env.finished:  # answered: closed with EOS (sampled or appended untrained), never "clipped"
        assert closed
    if not closed:  # clipped: only an episode that did not answer
        assert not text_env.finished


@pytest.mark.parametrize("fmt", ["react", "xml", "tools"])
@pytest.mark.parametrize("on_parse_error", ["continue", "end"])
def test_search_environment_parity(tokenizer, fmt, on_parse_error):
    table = scripts(fmt)
    agent_format, tool = get_format(fmt), SearchTool(FakeSearcher(), k=1, max_observation_chars=60)

    def make_env(name):
        return SearchEnvironment(agent_format, agent_format.prompt(f"script={name} Where?"), tool, max_turns=3,
                                 max_query_chars=12, on_parse_error=on_parse_error)

    text_envs, episodes = run_both(make_env, list(table), Policy(table), tokenizer)
    for name, text_env, episode in zip(table, text_envs, episodes, strict=True):
        token_env = episode.environment
        assert token_env.facts() == text_env.facts(), name
        assert [s.observation for s in token_env.steps] == [s.observation for s in text_env.steps], name
        assert [s.repeated_query for s in token_env.steps] == [s.repeated_query for s in text_env.steps], name
        assert token_env.end_reason == text_env.end_reason, name
        assert_same_text(text_env, episode, tokenizer)
    facts = {name: env.facts() for name, env in zip(table, text_envs, strict=True)}
    assert facts["answer"].answered and facts["answer"].num_searches == 2
    assert facts["limit"].hit_step_limit and facts["limit"].queries == ["a", "b", "c"]
    assert text_envs[list(table).index("repeat")].steps[1].repeated_query
    assert not facts["cut"].answered and facts["cut"].num_parse_errors >= 1  # an unclosed answer is no answer
    # a turn without a tool call is the tools format's answer; elsewhere EOS without an action is a parse error
    assert facts["eos"].num_turns == (1 if fmt == "tools" else 2 if on_parse_error == "continue" else 1)
    if on_parse_error == "end":
        assert facts["garbled"].num_turns == 1 and not facts["garbled"].answered
    else:
        assert facts["garbled"].answered and facts["eos"].answered


def test_single_turn_parity(tokenizer):
    table = {"ok": [(f"{MARK} <answer>3</answer>", "eos")], "none": [(f"{MARK} no answer", "length")]}

    def make_env(name):
        return SingleTurnEnvironment([{"role": "user", "content": f"script={name} 1+2?"}],
                                     extract=lambda t: (re.search(r"<answer>(.*?)</answer>", t) or [None, None])[1])

    text_envs, episodes = run_both(make_env, list(table), Policy(table), tokenizer)
    for text_env, episode in zip(text_envs, episodes, strict=True):
        assert episode.environment.facts() == text_env.facts()
        assert text_env.text == tokenizer.decode(episode.completion_ids, skip_special_tokens=True)
        assert all(episode.env_mask)
    assert [env.facts().answered for env in text_envs] == [True, False]


def test_reflect_retry_parity(tokenizer):
    table = {"rrr": [(f"{MARK} I should add.", "eos"), (f"{MARK} <answer>3</answer>", "eos")]}

    def make_env(name):
        failure = reflection_conversation([{"role": "user", "content": f"script={name} 1+2?"}], "<answer>4</answer>")
        return ReflectRetryEnvironment(failure, extract=lambda t: "3" if "<answer>3" in t else None, start=REFLECTION,
                                       max_tokens=16)

    text_envs, episodes = run_both(make_env, ["rrr"], Policy(table), tokenizer)
    text_env, episode = text_envs[0], episodes[0]
    assert episode.environment.fields() == text_env.fields()
    assert text_env.fields()["answered"] and text_env.fields()["retry_completion"].endswith("<answer>3</answer>")
    # the reflection is the whole (trained) completion; the retry is a side turn off the sequence,
    # generated from the retry conversation rendered whole, as the text loop prompts it
    assert tokenizer.decode(episode.completion_ids, skip_special_tokens=True) == f"{MARK} I should add."
    assert all(episode.env_mask) and len(episode.side_turns) == 1
    assert text_env.done and episode.environment.done
    retry_context = render(tokenizer, text_env.messages())  # the conversation the retry answered
    assert tokenizer.decode(episode.side_turns[0], skip_special_tokens=True) == text_env.fields()["retry_completion"]
    assert retry_context.endswith("<|im_start|>assistant\n") and "Now try the task again" in retry_context


def test_a_trained_turn_after_a_side_turn_is_refused(tokenizer):
    class Backwards(SingleTurnEnvironment):
        def next_turn(self):
            return TurnSpec(trained=False)

        @property
        def done(self):
            return False

    episode = start_episode(Backwards([{"role": "user", "content": "q"}]), tokenizer)
    episode.side_turns.append([1])
    from selfimprove.train.rollouts import context_ids

    with pytest.raises(RuntimeError, match="side turn"):
        context_ids(episode, TurnSpec(trained=True), "", tokenizer)
