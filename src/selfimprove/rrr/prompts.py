"""The reflection and retry prompts of Reflect-Retry-Reward, and the conversations they build.

After a failed attempt the conversation is: the task's own prompt, the failed attempt as the
assistant's turn, then the reflection prompt as a user turn (the model answers with its
reflection); then the retry prompt as a user turn (the model answers the task again). Both
prompts are plain strings from the config; the retry prompt may contain `{question}`, replaced
by the task's original user message. Nothing here calls a model.
"""

from __future__ import annotations

from typing import Any

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
