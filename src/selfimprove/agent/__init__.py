"""Agent layer: the episode loop (many episodes at once) and the agent formats.

- `run_agent(generator, task, examples, searcher, fmt, config, store)` -> list[Trajectory]
- formats by name in `FORMATS`: `react` (Araft), `xml` (Search-R1), `tools` (native tool calls)
- `summarize(trajectories)` for run-level numbers.
The trajectory schema itself lives in `selfimprove.data.trajectory`.
"""

from selfimprove.agent.formats import FORMATS, AgentFormat, ParsedStep, get_format
from selfimprove.agent.runner import AgentConfig, run_agent
from selfimprove.agent.summary import summarize

__all__ = ["FORMATS", "AgentConfig", "AgentFormat", "ParsedStep", "get_format", "run_agent", "summarize"]
