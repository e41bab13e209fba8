"""Tasks layer: verifiable tasks behind one contract (`selfimprove.tasks.base.Task`).

`get_task(name)` returns a task instance by registered name, by plugin name (entry point group
`selfimprove.tasks`), or from a "package.module:attr" path for user tasks (the attribute is a
Task class or instance) when that module is allowed (`--allow-import`,
$SELFIMPROVE_ALLOW_IMPORT; never the standard library: `selfimprove.registry`). Built-ins:
hotpotqa, countdown, function_calling, refiner, each a folder `tasks/<name>/` whose `__init__`
tells its story. This registry is the only place that lists task names: what other layers need
to know about a task (its default agent format, its reward's columns) it declares itself.
"""

from __future__ import annotations

from typing import Any

from selfimprove.registry import Registry
from selfimprove.tasks.base import Example, Score, Task

TASKS = Registry(
    "task",
    {
        "hotpotqa": "selfimprove.tasks.hotpotqa.task:HotpotQATask",
        "countdown": "selfimprove.tasks.countdown.task:CountdownTask",
        "function_calling": "selfimprove.tasks.function_calling.task:FunctionCallingTask",
        "refiner": "selfimprove.tasks.refiner.task:RefinerTask",
    },
    group="selfimprove.tasks",
)


def get_task(name: str, **options: Any) -> Task:
    """Instantiate a task by name (options go to its constructor)."""
    target = TASKS.get(name)
    return target(**options) if isinstance(target, type) else target


__all__ = ["TASKS", "Example", "Score", "Task", "get_task"]
