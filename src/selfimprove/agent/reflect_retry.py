"""The reflect-retry environment (Reflect-Retry-Reward): first try -> reflection -> retry.

After a failed attempt the conversation is: the task's own prompt, the failed attempt as the
assistant's turn, then the reflection prompt as a user turn (the model answers with its
reflection); then the retry prompt as a user turn (the model answers the task again). Both
prompts are plain strings from the config; the retry prompt may contain `{question}`, replaced
by the task's original user message.

`ReflectRetryEnvironment` runs that episode. It starts at the first try (evaluation: a first try
the task's scorer accepts ends the episode) or at a failure point (training: the prompt already
holds the failed attempt and the reflection request). Turns: the first try (`max_tokens`, not
trained), the reflection (`reflection_max_tokens`, None = the trainer's budget; the only trained
turn), the retry (`max_tokens`, not trained). The retry is generated from the retry conversation
rendered whole, in evaluation and in training alike, so it sees the same context and budget in
both (the token driver keeps it out of the trained sequence: no gradient, no cost in the loss).
"""

from __future__ import annotations

from typing import Any

from selfimprove.agent.environment import EpisodeFacts, ModelTurn, ToolCall, TurnSpec

REFLECTION_PROMPT = (
    "You got it wrong. Reflect on what went wrong in your answer above, so that you can do better on the "
    "next try. Do not solve the task again yet: write only a short reflection."
)
RETRY_PROMPT = "Now try the task again, using your reflection.\n\n{question}"

Messages = list[dict[str, Any]]


def task_question(prompt: Messages) -> str:
    """The task's first user message (what the retry prompt repeats as `{question}`).

    >>> task_question([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}])
    'q'
    """
    return next((str(m.get("content") or "") for m in prompt if m.get("role") == "user"), "")


def reflection_conversation(prompt: Messages, failed_attempt: str, reflection_prompt: str = REFLECTION_PROMPT) -> Messages:
    """Task prompt + the failed attempt + the request to reflect (the model writes the reflection next).

    >>> [m["role"] for m in reflection_conversation([{"role": "user", "content": "q"}], "a")]
    ['user', 'assistant', 'user']
    """
    return [*prompt, {"role": "assistant", "content": failed_attempt}, {"role": "user", "content": reflection_prompt}]


def retry_message(prompt: Messages, retry_prompt: str = RETRY_PROMPT) -> dict[str, str]:
    """The user turn that asks for the second try.

    >>> retry_message([{"role": "user", "content": "2+2?"}], "Again: {question}")["content"]
    'Again: 2+2?'
    """
    return {"role": "user", "content": retry_prompt.replace("{question}", task_question(prompt))}


def retry_conversation(reflection_messages: Messages, reflection: str, retry_prompt: str = RETRY_PROMPT) -> Messages:
    """The reflection conversation continued with the reflection and the retry request."""
    return [*reflection_messages, {"role": "assistant", "content": reflection}, retry_message(reflection_messages, retry_prompt)]


FIRST_TRY, REFLECTION, RETRY = "first_try", "reflection", "retry"


class ReflectRetryEnvironment:
    """One reflect-retry episode (see the module doc). `score(text)` -> the task's Score (first try and
    retry, evaluation); `extract(text)` tells whether the retry holds an answer (the `answered` fact)."""

    def __init__(self, prompt: Messages, score: Any = None, extract: Any = None, start: str = FIRST_TRY,
                 max_tokens: int | None = None, reflection_max_tokens: int | None = None,
                 reflection_prompt: str = REFLECTION_PROMPT, retry_prompt: str = RETRY_PROMPT):
        if start not in (FIRST_TRY, REFLECTION):
            raise ValueError(f"start must be {FIRST_TRY!r} or {REFLECTION!r}, not {start!r}")
        self.conversation, self.phase = list(prompt), start
        self.score, self.extract = score, extract
        self.budgets = {FIRST_TRY: max_tokens, REFLECTION: reflection_max_tokens, RETRY: max_tokens}
        self.reflection_prompt, self.retry_prompt = reflection_prompt, retry_prompt
        self.texts: dict[str, str] = {}
        self.scores: dict[str, Any] = {}
        self.ended: dict[str, bool] = {}

    @property
    def done(self) -> bool:
        return self.phase is None

    @property
    def finished(self) -> bool:
        return False

    def messages(self) -> Messages:
        return list(self.conversation)

    def next_turn(self) -> TurnSpec:
        return TurnSpec(max_tokens=self.budgets[self.phase], trained=self.phase == REFLECTION)

    def step(self, turn: ModelTurn) -> ToolCall | None:
        phase, text = self.phase, turn.text
        self.texts[phase], self.ended[phase] = text, turn.ended
        if phase != REFLECTION and self.score is not None:
            self.scores[phase] = self.score(text)
        if phase == FIRST_TRY:
            solved = self.score is not None and self.scores[phase].correct
            self.phase = None if solved else REFLECTION
            if not solved:
                self.conversation = reflection_conversation(self.conversation, text, self.reflection_prompt)
        elif phase == REFLECTION:
            self.conversation = retry_conversation(self.conversation, text, self.retry_prompt)
            self.phase = RETRY
        else:
            self.phase = None
        return None

    def observe(self, result: str | None) -> None:
        """Nothing to observe: the next request was appended by `step`."""

    def facts(self) -> EpisodeFacts:
        retry = self.texts.get(RETRY)
        answered = retry is not None and self.extract is not None and self.extract(retry) is not None
        return EpisodeFacts(answered=answered, num_turns=len(self.texts))

    def fields(self) -> dict[str, Any]:
        return {"retry_completion": self.texts.get(RETRY, ""), "reflection_text": self.texts.get(REFLECTION, ""),
                "reflection_ended": self.ended.get(REFLECTION, False), "retry_ended": self.ended.get(RETRY, False),
                **self.facts().to_dict()}
