"""An example selfimprove plugin: the `reverse_word` task, the `reversed_word` reward, the `lines` agent
format of the search environment, and a calculator environment (`calculator.py`).

Nothing here is imported by selfimprove until a name is asked for: the entry points in
pyproject.toml map each name to its object (see docs/extending.md). The calculator environment has
no entry point: environment objects are built in Python (the text loop, or GRPO's `rollout_func`).
"""
