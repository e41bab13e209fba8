"""The `Generator` protocol every stage uses, and its value types.

A generator takes a batch of chat conversations (lists of {"role", "content"} messages) and
returns, for each conversation, `params.n` completions. Stop strings end a completion
individually; the stop string itself is not part of `text` (as in vLLM and the OpenAI API)
but is reported in `stop`. Backends that work on tokens fill `prompt_ids`/`token_ids` so
trainers can use the exact generated tokens; remote backends leave them empty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]
Conversation = list[Message]


def default_temperature(samples: int) -> float:
    """The one default every command uses: greedy (0.0) for one sample per example, 0.7 for several.

    >>> default_temperature(1), default_temperature(4)
    (0.0, 0.7)
    """
    return 0.7 if samples > 1 else 0.0


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by all backends. temperature 0 means greedy.

    `top_k` and `repetition_penalty` (None = off) follow transformers' semantics; the local
    transformers backend and vLLM apply them; the OpenAI-compatible backend sends them only when
    set (vLLM and SGLang servers accept them, OpenAI's own API refuses unknown fields)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 or None: off), got {self.top_k}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        for key in ("top_k", "repetition_penalty"):  # off: left out, so records written before them read the same
            if data[key] is None:
                del data[key]
        return data


def optional_sampling(params: SamplingParams) -> dict[str, Any]:
    """top_k / repetition_penalty when set (vLLM and its OpenAI-compatible server apply both as
    transformers does: top_k keeps the k most likely tokens, the penalty divides positive logits of
    tokens already in the prompt or the completion and multiplies negative ones); {} when off.

    >>> optional_sampling(SamplingParams(top_k=20, repetition_penalty=1.1)), optional_sampling(SamplingParams(top_k=0))
    ({'top_k': 20, 'repetition_penalty': 1.1}, {})
    """
    found: dict[str, Any] = {}
    if params.top_k:  # None or 0: off
        found["top_k"] = params.top_k
    if params.repetition_penalty is not None:
        found["repetition_penalty"] = params.repetition_penalty
    return found


@dataclass
class Completion:
    """One generated continuation.

    finish_reason is "stop" (EOS or a stop string), "length" (max_tokens) or "error" (a remote
    backend gave up under an explicit failure policy; `text` is then empty).
    """

    text: str
    finish_reason: str = "stop"
    stop: str | None = None
    prompt_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    num_prompt_tokens: int = 0
    num_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    """Anything that turns conversations into completions."""

    name: str

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        """Return `params.n` completions for each conversation, in input order."""
        ...


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """Cut `text` at the earliest stop string; returns (text before it, the stop string or None).

    >>> cut_at_stop("Action: [Search, x] more", ("]",))
    ('Action: [Search, x', ']')
    >>> cut_at_stop("no stop here", ("]",))
    ('no stop here', None)
    """
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop) if stop else -1
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]
