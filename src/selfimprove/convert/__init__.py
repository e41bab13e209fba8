"""Converters: trajectories -> training data (above the agent and task layers, below training).

- `sft.py`: one SFT row per usable step (TRL's conversational prompt/completion), prompts rebuilt
  with the trajectory's own agent format;
- `dpo.py`: DPO pairs from failure modes (a repeated search query as the rejected step);
- `reference.py`: SFT rows from a task's reference solutions.
"""
