"""HotpotQA: multi-hop question answering, by default as a search agent over the passages.

- `task.py`: `HotpotQATask` (registered as "hotpotqa"): loaders for the original and Hugging Face
  layouts and the hub, the bundled demo, prompt, `<answer>` extraction, score = official F1;
  `evaluate_files` scores a predictions file (`selfimprove score hotpotqa`).
- `metrics.py`: the answer, supporting-fact and joint metrics of the official script, with
  per-level and per-type breakdowns (also used by the `exact_match` and `token_f1` rewards).
- `official.py`: a verbatim reference copy of `hotpot_evaluate_v1.py`, for tests and benchmarks only.

Runs as a ReAct search agent by default (`agent_format = "react"`); its task reward needs the
`answer` column.
"""
