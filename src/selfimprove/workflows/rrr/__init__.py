"""Reflect, Retry, Reward (arXiv 2505.24726): GRPO that trains a model to reflect on its failures.

- `failures`: sample the model k times per task example and keep the failed attempts (resumable).
- `prompts`: the configurable reflection and retry prompts, and the conversations built from them.
- `rollout`: the fail -> reflect -> retry episode as a TRL rollout_func; only reflection tokens
  are trained; the retry is sampled apart from the same context and with the same budget as in
  `evaluate`; `retry_correct` is the binary reward (1 when the retry passes the task's verifier).
- `train`: `selfimprove train rrr CONFIG.yaml` (GRPO from the failure point).
- `evaluate`: first-try and second-try (after reflection) accuracy; `experiment` runs the whole
  before/after measurement and writes the four-number table.
Nothing here imports torch/transformers/trl at import time.
"""
