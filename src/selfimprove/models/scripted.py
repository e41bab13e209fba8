"""A scripted Generator for tests and demos: answers come from a function, not a model.

`ScriptedGenerator(fn)` calls `fn(conversation, sample_index)` for every requested completion
and applies the stop strings as a real backend would. Useful to test agent loops, judges and
converters deterministically. Token ids are not produced.
"""

from __future__ import annotations

from collections.abc import Callable

from selfimprove.models.generator import Completion, Conversation, SamplingParams, cut_at_stop

ScriptFn = Callable[[Conversation, int], str]


class ScriptedGenerator:
    """A Generator that replies with `script(conversation, sample_index)`.

    >>> gen = ScriptedGenerator(lambda conv, i: "Paris] and more")
    >>> gen.generate([[{"role": "user", "content": "Capital?"}]], SamplingParams(stop=("]",)))[0][0].text
    'Paris'
    """

    def __init__(self, script: ScriptFn, name: str = "scripted"):
        self.script, self.name = script, name
        self.calls: list[list[Conversation]] = []

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        self.calls.append(conversations)
        return [[self._complete(conv, i, params) for i in range(params.n)] for conv in conversations]

    def _complete(self, conversation: Conversation, index: int, params: SamplingParams) -> Completion:
        text, stop = cut_at_stop(self.script(conversation, index), params.stop)
        return Completion(text=text, finish_reason="stop", stop=stop, num_tokens=len(text.split()))
