"""An example selfimprove plugin: the `reverse_word` task, the `reversed_word` reward, the `lines` environment.

Nothing here is imported by selfimprove until a name is asked for: the entry points in
pyproject.toml map each name to its object (see docs/extending.md).
"""
