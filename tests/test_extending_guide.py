"""docs/extending.md runs: its runnable Python blocks, and the calculator environment in both drivers.

A ```python block with `<!-- runnable python -->` on the line right above its fence is run as a
script (a subprocess, offline, the example plugin's `src/` on the path, not installed); when the
next block is a ```text block, that is exactly what the script must print. The guide's other
Python blocks are quotes of the example package (`tests/test_plugin_example.py` checks them).
The calculator environment of the example package is also run through GRPO's entry point
(`calculator_rollout_func()`, i.e. `train.rollouts.make_rollout_func`) with a stand-in trainer
over the tiny test tokenizer, and compared with the text loop: same facts, and the token sequence
shows exactly the text loop's last prompt, only the model's tokens trained.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "extending.md"
PLUGIN_SRC = ROOT / "examples" / "selfimprove-plugin-example" / "src"
MARKER = "<!-- runnable python -->"


def runnable_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line, code, expected output or None) of every block marked runnable python."""
    lines, found = text.splitlines(), []
    for index, line in enumerate(lines[:-1]):
        if line.strip() != MARKER:
            continue
        assert lines[index + 1].strip() == "```python", f"extending.md:{index + 1}: the marker must sit above ```python"
        end = lines.index("```", index + 2)
        code = "\n".join(lines[index + 2 : end]) + "\n"
        after = next((j for j in range(end + 1, len(lines)) if lines[j].strip()), None)
        expected = None
        if after is not None and lines[after].strip() == "```text":
            expected = "\n".join(lines[after + 1 : lines.index("```", after + 1)])
        found.append((index + 1, code, expected))
    return found


BLOCKS = runnable_blocks(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_runnable_blocks_for_task_reward_and_environment():
    assert len(BLOCKS) >= 3
    codes = "\n".join(code for _, code, _ in BLOCKS)
    assert "task_reward" in codes and "drive_text" in codes and "CalculatorEnvironment" in codes


@pytest.mark.parametrize("line, code, expected", BLOCKS, ids=[f"extending.md:{b[0]}" for b in BLOCKS])
def test_runnable_block(line, code, expected, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(PLUGIN_SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("SELFIMPROVE_ALLOW_IMPORT", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"extending.md:{line}\n{result.stdout}\n{result.stderr}"
    if expected is not None:
        assert result.stdout.strip() == expected.strip(), f"extending.md:{line}: printed\n{result.stdout}"


@pytest.fixture()
def calculator(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    import selfimprove_plugin_example.calculator as module

    return module


def test_the_calculator_never_evaluates_and_its_doctests_pass(calculator):
    result = doctest.testmod(calculator)
    assert result.attempted >= 2 and not result.failed
    assert calculator.calculate("2 ** 10").startswith("error:")
    assert calculator.Calculator().run(["1 + 2", "9 / 3", "x"]) == ["3", "3", "error: unexpected character 'x' at 0"]


def test_the_calculator_episode_ends_at_the_step_limit_with_its_parse_errors(calculator):
    from selfimprove.agent.loop import drive_text
    from selfimprove.models.generator import SamplingParams
    from selfimprove.models.scripted import ScriptedGenerator

    env = calculator.CalculatorEnvironment(calculator.calculator_prompt("1 + 1?"), max_turns=3)
    replies = iter(["<calc>1 + 1</calc>", "I am thinking", "<calc>2 * 2</calc>"])
    drive_text([env], ScriptedGenerator(lambda conversation, i: next(replies)),
               lambda spec, turn: SamplingParams(max_tokens=16, stop=spec.stop))
    assert env.messages()[-1]["content"] == ("<calc>1 + 1</calc><result>2</result>I am thinking<result>error: write "
                                             "<calc>expression</calc> or <answer>number</answer></result>"
                                             "<calc>2 * 2</calc>")  # the last turn's calculation is not run
    assert env.fields() == {"num_searches": 0, "num_parse_errors": 1, "answered": False, "num_turns": 3,
                            "hit_step_limit": True, "queries": [], "num_calculations": 2}


class StandInTrainer:
    """What `make_rollout_func` uses of a GRPOTrainer: the tokenizer, its generation hook, its metric log."""

    use_vllm = False

    def __init__(self, tokenizer, policy):
        self.processing_class, self.policy, self.metrics = tokenizer, policy, {}
        self.eos_token_ids = [tokenizer.eos_token_id]

    def _generate_single_turn(self, sequences, images, kwargs, n):
        replies = [self.policy(self.processing_class.decode(ids)) for ids in sequences]
        ids = [self.processing_class.encode(text, add_special_tokens=False) + [self.processing_class.eos_token_id]
               for text in replies]
        return ids, None

    def _log_metric(self, name, value):
        self.metrics[name] = value


def token_policy(context: str) -> str:
    """Calculate, then answer with the last result (the answer turn ends on EOS)."""
    results = re.findall(r"<result>([0-9/]+)</result>", context)  # not the instructions' <result>value</result>
    return "<calc>(17 + 25) * 3</calc> and more" if not results else f"<answer>{results[-1]}</answer>"


def test_the_calculator_runs_in_grpos_rollout_func_as_in_the_text_loop(calculator, tiny_model_dir):
    from transformers import AutoTokenizer

    from selfimprove.agent.loop import drive_text
    from selfimprove.models.generator import SamplingParams
    from selfimprove.models.scripted import ScriptedGenerator
    from selfimprove.train.rollouts import render

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = calculator.calculator_prompt("How many balls are in 3 boxes of 17 + 25?")
    trainer = StandInTrainer(tokenizer, token_policy)
    out = calculator.calculator_rollout_func()([prompt, prompt], trainer)
    text_env = calculator.CalculatorEnvironment(prompt)
    drive_text([text_env], ScriptedGenerator(lambda conversation, i: token_policy(render(tokenizer, conversation))),
               lambda spec, turn: SamplingParams(max_tokens=32, stop=spec.stop))
    assert out["num_calculations"] == [1, 1] and out["answered"] == [True, True] and out["num_turns"] == [2, 2]
    assert text_env.fields() == {key: out[key][0] for key in text_env.fields()}
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    assert ids[-1] == tokenizer.eos_token_id  # answered: closed with EOS, not "clipped"
    assert tokenizer.decode(out["prompt_ids"][0] + ids[:-1]) == render(tokenizer, text_env.messages())
    trained = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m], skip_special_tokens=True)
    assert trained == "<calc>(17 + 25) * 3</calc><answer>126</answer>"  # the <result> text is masked
    assert trainer.metrics["rollout/turns_mean"] == 2
