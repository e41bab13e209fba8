"""The citation refiner (DR Tulu style): a concise answer whose claims cite tool-output snippets.

- `task.py`: `RefinerTask` (registered as "refiner"): records with a tool output or snippets,
  a bundled demo, the prompt, and a score for a well-formed cited answer.
- `citations.py`: parsing `<snippet id=A,B>claim</snippet>` answers and DR Tulu's citation
  format and per-claim metrics (used by `selfimprove.rewards.citation`, which judges support).

Runs single-turn (`agent_format = "single"`); its task reward needs `tool_output` or `snippets`.
"""
