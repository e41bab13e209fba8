"""The agent's settings: one block, one spelling per knob, shared by eval, distill, `agent run` and GRPO.

`AgentSettings` holds what shapes an episode (format, searcher and its corpus or index, turns,
observation and query caps, what an unparseable turn does) and how the text-level loop samples
(tokens per turn, temperature, top_p, seed, attempts). Distillation and GRPO configs take it as
their `agent:` block; eval's flat settings carry the same names and build one per repeat. GRPO
reads the episode knobs only: its sampling is the trainer's, and a GRPO config refuses the
sampling keys (see `train.grpo`). Unknown keys are refused (StrictModel), and old spellings
(`max_steps`, `search`, `index`) name the new one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfimprove.config import StrictModel
from selfimprove.models.generator import SamplingParams


class AgentSettings(StrictModel):
    """Settings of an agent run (YAML-loadable; unknown keys are errors)."""

    format: str = "react"
    searcher: str = "bm25"
    corpus: str | None = None
    index_dir: str | None = None
    max_turns: int = Field(5, ge=1)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    attempts: int = Field(1, ge=1)
    search_k: int = Field(2, ge=1)
    max_observation_chars: int = Field(500, ge=1)
    max_query_chars: int = Field(300, ge=1)
    on_parse_error: Literal["continue", "end"] = "continue"
    progress: bool = True

    def sampling(self, stop: tuple[str, ...], turn: int, max_tokens: int | None = None) -> SamplingParams:
        """Sampling for turn `turn` (seed + turn when seeded); `max_tokens` overrides the per-turn budget."""
        seed = None if self.seed is None else self.seed + turn
        return SamplingParams(max_tokens=max_tokens or self.max_tokens, temperature=self.temperature,
                              top_p=self.top_p, n=1, stop=stop, seed=seed)
