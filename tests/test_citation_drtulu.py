"""Golden values for the citation reward, computed by hand from DR Tulu's definitions.

Reference: rlresearch/dr-tulu, rl/open-instruct/open_instruct/search_rewards/utils/citation_utils.py.
- `extract_claims_and_corresponding_citation_ids`: claims = every cited span (with its ids) AND every
  non-empty stripped stretch of text between spans (ids []), keyed by text.
- `score_citation_recall`: a claim with cited snippet text -> judge support (fully 1, partially 0.5,
  no support 0); without -> 1 - (judge: "needs a citation?" yes 1 / no 0).
- `score_citation_precision`: without cited snippet text -> 1; with -> judge relevance (1 / 0).
- `score_citation_f1` = 2PR / (P + R), 0 when P + R = 0; averaged over the claims.
- `score_citation_format`: distinct cited ids that exist in the tool output / distinct cited ids; 0 if none.
- `score_in_context_citations` = 0.6 x mean F1 + 0.4 x format; 0 when there are no snippets.
"""

from __future__ import annotations

import pytest

from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.rewards.citation import citation_reward, refiner_reward
from selfimprove.rewards.judge_client import FENCE_BEGIN, FENCE_END

TOOL = ("<snippet id=a1>The Eiffel Tower was completed in March 1889 for the World's Fair.</snippet>\n"
        "<snippet id=b2>The tower is 330 metres tall including antennas.</snippet>")

# 1 cited true claim + 2 uncited false claims (in two stretches, so two claims; DR Tulu does not split by sentence).
ONE_CITED_TWO_UNCITED = ("<answer>The tower is 500 metres tall. <snippet id=a1>The tower was completed in 1889</snippet> "
                         "It was designed by Leonardo da Vinci.</answer>")

# What the scripted judge says, per claim (the fenced statement in each prompt).
SUPPORT = {"The tower was completed in 1889": "Score: 1", "The tower was completed in 1890.": "Score: 0.5",
           "It is 330 metres tall.": "Score: 1", "Construction finished in the spring of 1889": "Score: 1"}
NEEDS_CITATION = {"In short:": "Verdict: no"}  # every other uncited stretch: "Verdict: yes"


def statement(prompt: str) -> str:
    return prompt.rsplit(FENCE_BEGIN, 1)[1].split(FENCE_END, 1)[0].strip()


def judge_script(conversation, index) -> str:
    prompt = conversation[-1]["content"]
    if "Criterion:" in prompt:  # rubric questions of refiner_reward
        return "Score: 1"
    if "requires a citation" in prompt:
        return NEEDS_CITATION.get(statement(prompt), "Verdict: yes")
    if "Verdict:" in prompt:  # relevance
        return "Verdict: yes"
    return SUPPORT.get(statement(prompt), "Score: 0")


def test_uncited_claims_count_lexical():
    # Claims: "The tower is 500 metres tall." and "It was designed by Leonardo da Vinci." (uncited, 4 and 3
    # content words: need a citation -> R 0, P 1, F1 0) + the cited span (a1 holds tower/completed/1889:
    # support 1, relevant -> F1 1). Mean F1 = 1/3; format = 1/1. Reward = 0.6/3 + 0.4 = 0.6 (before: 1.0).
    reward = citation_reward()
    assert reward([ONE_CITED_TWO_UNCITED], tool_output=[TOOL]) == pytest.approx([0.6])
    assert reward.parts["citation_recall"] == pytest.approx([1 / 3])
    assert reward.parts["claims"] == [3.0]


def test_uncited_claims_count_with_a_judge():
    # The judge says both uncited stretches need a citation and the cited span is fully supported and
    # relevant: mean F1 = (0 + 0 + 1) / 3, format 1 -> 0.6 (before: 1.0, uncited text ignored).
    reward = citation_reward(ScriptedGenerator(judge_script))
    assert reward([ONE_CITED_TWO_UNCITED], tool_output=[TOOL]) == pytest.approx([0.6])
    assert reward.stats["requests"] == 4  # 2 x "needs a citation?" + support + relevance


def test_judge_mode_recall_is_judged_not_identically_one():
    # Claims (separate stretches; the space between the two spans strips to nothing and is no claim):
    #   "In short:"                         uncited, judge: no citation needed  -> R 1,   P 1, F1 1
    #   "The tower is 500 metres tall."     uncited, judge: needs a citation    -> R 0,   P 1, F1 0
    #   "The tower was completed in 1890." [a1] partially supported, relevant   -> R 0.5, P 1, F1 2/3
    #   "It is 330 metres tall."           [b2] fully supported, relevant       -> R 1,   P 1, F1 1
    # mean R = 2.5/4 = 0.625, mean P = 1, mean F1 = (8/3)/4 = 2/3; format 2/2 = 1 -> 0.6 x 2/3 + 0.4 = 0.8.
    # (Before: recall 1.0 whatever the judge said, reward 0.886.)
    text = ("<answer>In short: <snippet id=a1>The tower was completed in 1890.</snippet> "
            "<snippet id=b2>It is 330 metres tall.</snippet> The tower is 500 metres tall.</answer>")
    reward = citation_reward(ScriptedGenerator(judge_script))
    assert reward([text], tool_output=[TOOL]) == pytest.approx([0.8])
    assert reward.parts["citation_recall"] == pytest.approx([0.625])
    assert reward.parts["citation_precision"] == pytest.approx([1.0])
    assert reward.parts["citation_f1"] == pytest.approx([2 / 3])


def test_judge_failure_is_a_failed_sample_not_a_zero():
    reward = citation_reward(ScriptedGenerator(lambda conversation, index: "I cannot tell."))
    assert reward([ONE_CITED_TWO_UNCITED], tool_output=[TOOL]) == [None]
    assert reward.stats["failures"] == 1 and reward.stats["garbage"] == 4


@pytest.mark.parametrize(("completion", "expected"), [
    # cited span on the wrong snippet (b2 shares only "tower": support 0, not relevant): F1 0, format 1 -> 0.4
    ("<answer><snippet id=b2>The tower was completed in 1889</snippet></answer>", 0.4),
    # nothing cited (format 0), one stretch with no factual content (needs no citation: F1 1) -> 0.6
    ("<answer>I do not know.</answer>", 0.6),
    # ids {a1, zz}: format 1/2; evidence = a1 only: F1 1 -> 0.6 + 0.4 x 0.5 = 0.8
    ("<answer><snippet id=a1,zz>The tower was completed in 1889</snippet></answer>", 0.8),
])
def test_default_weights_are_0_6_f1_and_0_4_format(completion, expected):
    assert citation_reward()([completion], tool_output=[TOOL]) == pytest.approx([expected])


def test_no_snippets_scores_zero_and_weights_are_configurable():
    reward = citation_reward(f1_weight=0.8, format_weight=0.2)
    # same F1 1 / format 1/2 as above: 0.8 + 0.1; a row without snippets scores 0
    completion = "<answer><snippet id=a1,zz>The tower was completed in 1889</snippet></answer>"
    assert reward([completion, completion], tool_output=[TOOL, ""]) == pytest.approx([0.9, 0.0])


def test_refiner_reward_uses_the_configured_judge_for_citations():
    # A paraphrase lexical overlap cannot see (only "1889" is shared: lexical support 0, F1 0 -> 0.4),
    # the judge says fully supported and relevant: citation = 0.6 + 0.4 = 1.0. Rubric 1.0.
    # refiner_reward = 1.0 + 0.2 x 1.0 = 1.2 (before: the citation part was lexical, 1.0 + 0.2 x 0.2 = 1.04).
    completion = "<answer><snippet id=a1>Construction finished in the spring of 1889</snippet></answer>"
    reward = refiner_reward(ScriptedGenerator(judge_script))
    assert reward([completion], question=["When?"], tool_output=[TOOL], positive_rubrics=[["year given"]]) == \
        pytest.approx([1.2])
    assert reward.parts["citation"] == pytest.approx([1.0])
