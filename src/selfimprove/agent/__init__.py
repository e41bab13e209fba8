"""Agent layer: the episode loop (many episodes at once) and the agent formats.

- `run_agent(generator, task, examples, searcher, fmt, config, store)` -> list[Trajectory]
- `AgentSettings`: the one settings block of an agent run (eval, distill, `agent run`, GRPO)
- formats by name in `FORMATS`: `react` (Araft), `xml` (Search-R1), `tools` (native tool calls)
- run-level numbers: `selfimprove.data.trajectory_metrics.trajectory_metrics(trajectories)`.
The trajectory schema itself lives in `selfimprove.data.trajectory`.
"""

from selfimprove.agent.formats import FORMATS, AgentFormat, ParsedStep, get_format
from selfimprove.agent.loop import run_agent
from selfimprove.agent.settings import AgentSettings

__all__ = ["FORMATS", "AgentFormat", "AgentSettings", "ParsedStep", "get_format", "run_agent"]
