"""Function calling: xLAM/APIGen and BFCL data, scored the way BFCL's AST checker does.

- `task.py`: `FunctionCallingTask` (registered as "function_calling"): xLAM and BFCL loaders
  ("bfcl:CATEGORY" from the installed `bfcl-eval` data), the tool-call prompt, the score.
- `calls.py`: parsing calls out of model output (`<tool_call>` JSON, JSON, python-like calls)
  with literal-only parsing and bounded sizes; never runs anything.
- `checker.py`: comparing parsed calls with BFCL-shaped gold (types, optional parameters,
  order-insensitive matching).

Runs single-turn (`agent_format = "single"`); the `function_call_correct` reward needs a tools
column (`tools` or `function`) and a gold column (`gold_calls`, `ground_truth` or `answers`).
"""
