"""The reward catalogue: built-in reward names -> "module:attr" (imported lazily), plus plugins.

Its own module so that `rewards/config.py` (which builds entries) and the package face
(`selfimprove.rewards`) both read it without importing each other.
"""

from __future__ import annotations

from selfimprove.registry import Registry

REWARDS = Registry(
    "reward",
    {
        # answers
        "exact_match": "selfimprove.rewards.answer:exact_match",
        "token_f1": "selfimprove.rewards.answer:token_f1",
        "numeric_match": "selfimprove.rewards.answer:numeric_match",
        "task_reward": "selfimprove.rewards.answer:task_reward",
        "countdown_correct": "selfimprove.rewards.answer:countdown_correct",
        "countdown_format": "selfimprove.rewards.answer:countdown_format",
        "think_answer_format": "selfimprove.rewards.format:think_answer_format",
        "function_call_correct": "selfimprove.rewards.answer:function_call_correct",
        # classic GRPO (willccbb gist / Unsloth)
        "xml_correctness": "selfimprove.rewards.classic:xml_correctness",
        "xml_int_answer": "selfimprove.rewards.classic:xml_int_answer",
        "strict_format": "selfimprove.rewards.classic:strict_format",
        "soft_format": "selfimprove.rewards.classic:soft_format",
        "xmlcount": "selfimprove.rewards.classic:xmlcount",
        # agent behaviour
        "search_count_capped": "selfimprove.rewards.agent:search_count_capped",
        "search_effort": "selfimprove.rewards.agent:search_effort",
        "repeated_query_penalty": "selfimprove.rewards.agent:repeated_query_penalty",
        "search_diversity": "selfimprove.rewards.agent:search_diversity",
        "step_limit_penalty": "selfimprove.rewards.agent:step_limit_penalty",
        "parse_error_penalty": "selfimprove.rewards.agent:parse_error_penalty",
        "length_penalty": "selfimprove.rewards.agent:length_penalty",
        "reward_formatting": "selfimprove.rewards.agent:reward_formatting",  # AutoDidact's
        # judged
        "llm_judge_correctness": "selfimprove.rewards.judge_rewards:llm_judge_correctness",
        "rubric_judge": "selfimprove.rewards.judge_rewards:rubric_judge",
        "citation": "selfimprove.rewards.citation:citation_reward",
        "refiner_reward": "selfimprove.rewards.citation:refiner_reward",
    },
    group="selfimprove.rewards",  # plugins: entry points of installed packages
)
