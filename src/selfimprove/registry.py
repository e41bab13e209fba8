"""A small lazy registry: user-facing names -> "module:attr" targets, imported on first use.

Used for what users pick by name in YAML or on the command line (tasks, rewards, formats, stage
kinds, searchers). Unknown names fail with a did-you-mean hint. Names that run code follow one
trust model (docs/reliability.md, "Names that run code"):

- registered names (and the "module:attr" target a registered name points at) resolve as is;
- a plugin an installed package declares under the registry's entry point group
  (`selfimprove.rewards`, `selfimprove.tasks`, ...) resolves by its entry point name;
- any other "package.module:attr" resolves ONLY when the user allowed that module explicitly:
  `--allow-import MODULE` on the command line (`allow_imports`) or
  `SELFIMPROVE_ALLOW_IMPORT=mod1,mod2` (a module allows its submodules). Nothing is imported
  before that check, so a refused module's top-level code never runs;
- the standard library, builtins and `__main__` are always refused, whoever asks, and so is a
  target that turns out to be a standard-library function re-exported by an allowed module.

It guarantees nothing about what an allowed target does; callers check its shape.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from selfimprove.errors import UserError

ALLOW_ENV = "SELFIMPROVE_ALLOW_IMPORT"
_ALLOWED: set[str] = set()
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ALWAYS_REFUSED = {"builtins", "__main__", "__builtin__"}


class ImportRefused(UserError):
    """A "module:attr" name the trust model does not allow to be imported."""


class Registry:
    """Maps names to lazily imported objects.

    >>> r = Registry("demo", {"join": "os.path:join"})
    >>> r.get("join")("a", "b")
    'a/b'
    >>> r.get("jion")
    Traceback (most recent call last):
    ...
    selfimprove.errors.UserError: unknown demo 'jion'; did you mean 'join'? (known: join)
    >>> r.get("os:system")
    Traceback (most recent call last):
    ...
    selfimprove.registry.ImportRefused: demo 'os:system': importing 'os' is not allowed (standard library)
    """

    def __init__(self, kind: str, entries: dict[str, str] | None = None,
                 group: str | tuple[str, ...] | None = None):
        self.kind = kind
        self.group = group  # one entry point group, or several (the first one that names a plugin wins)
        self._targets: dict[str, str] = dict(entries or {})
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str | Any) -> None:
        """Add `name`; `target` is a "module:attr" string or the object itself (trusted: code calls this)."""
        if isinstance(target, str):
            self._targets[name] = target
        else:
            self._loaded[name] = target
            self._targets[name] = f"{getattr(target, '__module__', '?')}:{getattr(target, '__name__', name)}"

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._plugins()))

    def __contains__(self, name: str) -> bool:
        return name in self._targets or name in self._plugins()

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        if name in self._targets:
            obj = import_target(self._targets[name], self.kind)
        elif self._registered_name(name) is not None:
            return self.get(self._registered_name(name))
        elif name in self._plugins():
            obj = self._load_plugin(name)
        elif ":" in name:
            obj = import_user_target(name, self.kind)
        else:
            raise UserError(self.unknown_message(name))
        self._loaded[name] = obj
        return obj

    def _registered_name(self, target: str) -> str | None:
        return next((name for name, value in self._targets.items() if value == target), None)

    def _plugins(self) -> dict[str, Any]:
        """Entry points of this registry's group, by name (none without a group)."""
        groups = (self.group,) if isinstance(self.group, str) else tuple(self.group or ())
        plugins: dict[str, Any] = {}
        for group in reversed(groups):
            try:
                found = importlib.metadata.entry_points(group=group)
            except Exception:  # a broken installed distribution must not break built-in names
                continue
            plugins.update({ep.name: ep for ep in found})
        return plugins

    def _load_plugin(self, name: str) -> Any:
        entry = self._plugins()[name]
        module_name = str(entry.value).partition(":")[0].strip()
        _refuse_stdlib(module_name, f"{self.kind} '{name}' (plugin {entry.value})")
        try:
            obj = entry.load()
        except Exception as exc:  # the plugin's own import error, shown on one line
            raise UserError(f"{self.kind} '{name}': cannot load plugin {entry.value}: {exc}") from None
        _refuse_stdlib_object(obj, f"{self.kind} '{name}' (plugin {entry.value})")
        return obj

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(self.names())})"


def allow_imports(modules: Iterable[str]) -> None:
    """Allow "module:attr" names from these modules (and their submodules) in this process.

    The library side of the CLI's `--allow-import MODULE`. Standard-library modules stay refused.
    """
    for module in modules:
        for part in str(module).split(","):
            if part.strip():
                _ALLOWED.add(part.strip())


def allowed_imports() -> set[str]:
    """Modules allowed by `allow_imports` and by $SELFIMPROVE_ALLOW_IMPORT (comma-separated)."""
    from_env = {part.strip() for part in os.environ.get(ALLOW_ENV, "").split(",") if part.strip()}
    return _ALLOWED | from_env


def is_allowed(module_name: str) -> bool:
    """Whether `module_name` is an allowed module or inside one."""
    return any(module_name == allowed or module_name.startswith(allowed + ".") for allowed in allowed_imports())


def is_stdlib(module_name: str) -> bool:
    """Standard-library, builtin or `__main__` modules (always refused for user names).

    >>> is_stdlib("os.path"), is_stdlib("subprocess"), is_stdlib("selfimprove.rewards")
    (True, True, False)
    """
    top = module_name.split(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or top in _ALWAYS_REFUSED


def _refuse_stdlib(module_name: str, what: str) -> None:
    if is_stdlib(module_name):
        raise ImportRefused(f"{what}: importing '{module_name}' is not allowed (standard library)")


def _refuse_stdlib_object(obj: Any, what: str) -> None:
    """A module, or a function or class of the standard library, reached through an allowed module."""
    if inspect.ismodule(obj):
        raise ImportRefused(f"{what}: resolves to the module '{obj.__name__}', not a function or class")
    plain = inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj) or inspect.ismethod(obj)
    home = getattr(obj, "__module__", None) if plain else None
    if isinstance(home, str) and is_stdlib(home):
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", "?"))
        raise ImportRefused(f"{what}: resolves to the standard library's '{home}.{name}' (not allowed)")


def import_user_target(target: str, kind: str = "object") -> Any:
    """Import a "module:attr" name a user gave, under the trust model (see the module docstring)."""
    what = f"{kind} '{target}'"
    module_name, _, attr = target.partition(":")
    if not _MODULE.match(module_name) or not attr:
        raise UserError(f"{what}: expected a registered name or package.module:attr")
    _refuse_stdlib(module_name, what)
    if not is_allowed(module_name):
        raise ImportRefused(
            f"{what}: importing '{module_name}' is not allowed; allow it with --allow-import {module_name} "
            f"(or {ALLOW_ENV}={module_name}), or install it as a plugin (docs/reliability.md)")
    obj = import_target(target, kind)
    _refuse_stdlib_object(obj, what)
    return obj


def import_target(target: str, kind: str = "object") -> Any:
    """Import "package.module:attr" and return the attribute, with a clear error if it fails.

    No trust check: for targets written in code (registered names, internal paths). Names that
    come from users go through `import_user_target`.
    """
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {kind} module '{module_name}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"module '{module_name}' has no {kind} '{attr}'") from None
