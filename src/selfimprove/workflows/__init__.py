"""Workflows: chains of the layers below, in one place above them (nothing below imports this package).

- `distill.py`: run a teacher agent, keep the trajectories a verifier accepts;
- `rrr/`: Reflect-Retry-Reward: failure sets, the RRR training run and its rollout/reward glue,
  the before/after experiment;
- `pipeline/`: recipes: stages chained through files, manifests, the train/eval overlap check.
"""
