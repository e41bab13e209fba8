"""Typed reward entries: keys a reward does not take are refused with a did-you-mean, and a task
reward without a task takes the run's task."""

from __future__ import annotations

import pytest

from selfimprove.errors import ConfigError
from selfimprove.rewards.config import build_reward_funcs, load_reward_set


def refused(entry, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        build_reward_funcs([{"name": "soft_format"}, entry], **kwargs)
    return str(caught.value)


def test_a_key_no_reward_takes_is_refused_naming_the_entry():
    message = refused({"name": "exact_match", "threshold": 0.5})
    assert message.startswith("rewards[1]: reward entry 'exact_match' takes no key 'threshold'")
    assert "its keys: label, name, params, weight" in message


def test_a_misspelt_key_gets_a_did_you_mean():
    assert "did you mean 'weight'?" in refused({"name": "exact_match", "weigth": 0.5})
    assert "did you mean 'threshold'?" in refused({"name": "gate", "reward": "exact_match",
                                                   "condition": "soft_format", "treshold": 0.5})


def test_a_factory_param_at_the_top_says_to_put_it_under_params():
    assert "put it under `params:`" in refused({"name": "length_penalty", "max_words": 10})


def test_a_param_the_factory_does_not_take_is_refused_with_a_did_you_mean():
    message = refused({"name": "length_penalty", "params": {"max_word": 10}})
    assert message.startswith("rewards[1]: reward 'length_penalty' takes no param 'max_word'; did you mean 'max_words'?")


def test_compositions_take_only_their_own_keys():
    assert "takes no key 'factor'" in refused({"name": "gate", "reward": "exact_match", "condition": "soft_format",
                                               "factor": 2})
    assert "takes no key 'params'" in refused({"name": "scale", "reward": "exact_match", "params": {}})
    funcs, weights = build_reward_funcs([{"name": "scale", "reward": "exact_match", "factor": 2, "label": "x2"}])
    assert [f.__name__ for f in funcs] == ["x2"] and weights == [1.0]


def test_a_task_reward_defaults_to_the_run_task_and_an_entry_task_wins():
    funcs, _ = build_reward_funcs([{"name": "task_reward", "params": {"field": "correct"}},
                                   {"name": "task_reward", "params": {"task_name": "hotpotqa"}},
                                   {"name": "weighted_sum", "label": "mix", "parts": ["task_reward"]}],
                                  split=False, task="countdown")
    assert [f.__name__ for f in funcs] == ["countdown_correct", "hotpotqa_value", "mix"]
    assert funcs[0](["<answer>(2 + 3) * 4</answer>"], nums=[[2, 3, 4]], target=[20]) == [1.0]


def test_a_task_reward_with_no_task_anywhere_is_a_config_error():
    assert refused({"name": "task_reward"}) == ("rewards[1]: reward 'task_reward' needs a task: give "
                                                "`params: {task_name: NAME}` or use it in a run with a `task:`")


def test_a_rewards_file_gives_its_task(tmp_path):
    path = tmp_path / "rewards.yaml"
    path.write_text("task: countdown\nrewards:\n  - name: task_reward\n")
    funcs, _ = load_reward_set(config_path=str(path))
    assert [f.__name__ for f in funcs] == ["countdown_value"]


def test_grpo_gives_its_task_to_the_rewards(monkeypatch, tmp_path):
    import selfimprove.train.grpo as grpo

    seen = {}
    monkeypatch.setattr(grpo, "run_grpo", lambda config, rows, funcs, *a, **k: seen.setdefault("funcs", funcs))
    config = grpo.GRPORunConfig(task="countdown", data="generate:n=2,seed=0", output_dir=str(tmp_path),
                                rewards=[{"name": "task_reward", "params": {"field": "correct"}}])
    grpo.train_grpo(config)
    assert [f.__name__ for f in seen["funcs"]] == ["countdown_correct"]
