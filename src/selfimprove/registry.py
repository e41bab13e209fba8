"""A small lazy registry: user-facing names -> "module:attr" targets, imported on first use.

Used for what users pick by name in YAML or on the command line (tasks, rewards, models,
searchers). A name that is a full "package.module:attr" path is imported directly, so users can
plug in their own objects without registering them. Unknown names fail with a did-you-mean hint.
It guarantees nothing about what the target is; callers check that.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from selfimprove.errors import UserError


class Registry:
    """Maps names to lazily imported objects.

    >>> r = Registry("demo", {"join": "os.path:join"})
    >>> r.get("join")("a", "b")
    'a/b'
    >>> r.get("jion")
    Traceback (most recent call last):
    ...
    selfimprove.errors.UserError: unknown demo 'jion'; did you mean 'join'? (known: join)
    """

    def __init__(self, kind: str, entries: dict[str, str] | None = None):
        self.kind = kind
        self._targets: dict[str, str] = dict(entries or {})
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str | Any) -> None:
        """Add `name`; `target` is a "module:attr" string or the object itself."""
        if isinstance(target, str):
            self._targets[name] = target
        else:
            self._loaded[name] = target
            self._targets[name] = f"{getattr(target, '__module__', '?')}:{getattr(target, '__name__', name)}"

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        target = self._targets.get(name)
        if target is None and ":" in name:
            target = name
        if target is None:
            raise UserError(self.unknown_message(name))
        self._loaded[name] = import_target(target, self.kind)
        return self._loaded[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(self.names())})"


def import_target(target: str, kind: str = "object") -> Any:
    """Import "package.module:attr" and return the attribute, with a clear error if it fails."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {kind} module '{module_name}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"module '{module_name}' has no {kind} '{attr}'") from None
