"""Countdown (TinyZero style): reach a target number with + - * / over the given numbers.

- `task.py`: `CountdownTask` (registered as "countdown"): generated or file examples, the prompt,
  the last `<answer>` block as the answer, `check_equation` and the score with its breakdown;
  `score_file` rescores a file of completions (`selfimprove score countdown`).
- `equation.py`: the safe equation evaluator (own parser, exact fractions, never `eval`).

Runs single-turn (`agent_format = "single"`); the `countdown_correct` reward needs the `nums`
and `target` columns.
"""
