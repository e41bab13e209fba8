"""A run directory: the `--out` of one resumable run, its settings manifest and its lock.

- `settings_fingerprint(settings)`: sha256 of the canonical JSON of the settings that change
  results (callers leave out what does not: progress bars, `overwrite`, the output path).
- `check_same_settings(out, command, settings, overwrite, owned)`: the first run writes
  `out/run.json` (command, settings, fingerprint, package versions). A later run into the same
  `out` resumes only when command and fingerprint match; otherwise it is a ConfigError naming
  each differing setting (`threshold: 0.0 -> 1.0`). With `overwrite`, the files the run owns
  (`owned`, names relative to `out`) are removed first and the run starts afresh; nothing else in
  `out` is touched. Outputs without a `run.json` (an older version wrote them) are refused too.
- `exclusive(out)`: an OS-level lock (`fcntl.flock` on `out/.lock`) held for the whole run; a
  second process gets a ConfigError naming the holder (pid, host, start time, from the text the
  holder wrote into the lock file). The kernel drops the lock when its holder dies (even by
  SIGKILL), so a stale `.lock` file is simply taken over. Re-entrant within one process;
  `shared=True` takes a shared lock (several cooperating processes, none exclusive).
Not guaranteed: locking on network file systems without flock support (NFS < v4, some FUSE), or
non-POSIX systems (no lock is taken there).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from selfimprove.errors import ConfigError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
_HELD: dict[tuple[str, str], int] = {}  # (resolved dir, lock name) -> nesting depth in this process


def canonical(settings: dict[str, Any]) -> str:
    """Canonical JSON text of `settings` (sorted keys, no spaces; non-JSON values as text)."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """A short stable hash of the settings.

    >>> settings_fingerprint({"b": 1, "a": [1, 2]}) == settings_fingerprint({"a": [1, 2], "b": 1})
    True
    >>> settings_fingerprint({"threshold": 0.0}) == settings_fingerprint({"threshold": 1.0})
    False
    """
    return hashlib.sha256(canonical(settings).encode()).hexdigest()[:16]


def ids_digest(ids: Iterable[Any]) -> str:
    """A hash of a sequence of example ids (which examples a run covers, in order)."""
    return hashlib.sha256("\n".join(str(i) for i in ids).encode()).hexdigest()[:16]


VERSIONED_PACKAGES = ("selfimprove", "torch", "transformers", "trl", "peft", "datasets", "accelerate")


def versions() -> dict[str, str]:
    """Python's and the installed libraries' versions, as run manifests and stage manifests record them."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def read_run(out: str | Path) -> dict[str, Any] | None:
    """The run manifest of `out`, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((Path(out) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_run(out: str | Path, command: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Write `out/run.json` atomically; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"command": command, "settings": json.loads(canonical(settings)),
                "fingerprint": settings_fingerprint(settings), "versions": versions()}
    tmp = out / f"{RUN_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / RUN_FILE)
    return manifest


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {"a.b": leaf}.

    >>> flatten({"agent": {"seed": 0}, "threshold": 1.0})
    {'agent.seed': 0, 'threshold': 1.0}
    """
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`name: old -> new` for every setting that differs (missing ones shown as `unset`).

    >>> differences({"threshold": 0.0, "agent": {"seed": 0}}, {"threshold": 1.0, "agent": {"seed": 0}})
    ['threshold: 0.0 -> 1.0']
    """
    before, after = flatten(json.loads(canonical(old))), flatten(json.loads(canonical(new)))
    changed = []
    for key in sorted(set(before) | set(after)):
        if before.get(key, _UNSET) != after.get(key, _UNSET):
            changed.append(f"{key}: {_show(before.get(key, _UNSET))} -> {_show(after.get(key, _UNSET))}")
    return changed


_UNSET = object()


def _show(value: Any) -> str:
    return "unset" if value is _UNSET else json.dumps(value, ensure_ascii=False)


def check_same_settings(out: str | Path, command: str, settings: dict[str, Any], overwrite: bool = False,
                        owned: Iterable[str] = ()) -> bool:
    """Refuse to resume `out` with other settings (or another command); record them when starting.

    Returns True when this call recorded the settings (a fresh run), False when it resumes.

    `owned`: the files and folders (relative to `out`) this kind of run writes; `overwrite`
    removes exactly those (and run.json), then starts afresh.
    """
    out, owned = Path(out), list(owned)
    if overwrite:
        remove_owned(out, owned)
    manifest = read_run(out)
    if manifest is None:
        present = [name for name in owned if (out / name).exists()]
        if present:
            raise ConfigError(f"{out} holds outputs ({', '.join(present)}) with no {RUN_FILE} recording their "
                              "settings (written by an older version?): pass --overwrite to start afresh, "
                              "or use another --out")
        write_run(out, command, settings)
        return True
    refuse_if_different(out, manifest, command, settings)
    return False


def refuse_if_different(out: Path, manifest: dict[str, Any], command: str, settings: dict[str, Any],
                        fresh: str = "pass --overwrite to start afresh") -> None:
    """ConfigError unless `manifest` records the same command and settings fingerprint."""
    if manifest.get("command") != command:
        raise ConfigError(f"{out} holds a `{manifest.get('command')}` run, not a `{command}` run: "
                          f"use another output directory (or {fresh})")
    if manifest.get("fingerprint") == settings_fingerprint(settings):
        return
    changed = differences(manifest.get("settings") or {}, settings) or ["(settings fingerprint)"]
    raise ConfigError(f"{out} holds a `{command}` run with other settings ({'; '.join(changed)}): resuming would "
                      f"mix the two runs; re-run with the same settings to resume, {fresh}, or use another "
                      "output directory")


def remove_owned(out: Path, owned: Iterable[str]) -> None:
    """Delete the run's own outputs in `out` (files, folders, their `.tmp` leftovers) and run.json."""
    for name in [*owned, RUN_FILE]:
        target = out / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"owned output {name!r} is not inside {out}")
        for path in (target, target.with_name(target.name + ".tmp")):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


@contextlib.contextmanager
def exclusive(out: str | Path, shared: bool = False, name: str = LOCK_FILE, wait: bool = False,
              label: str | Path | None = None) -> Iterator[Path]:
    """Hold the lock on `out` (created if missing) for the duration of the block (`wait`: block until free).

    `label`: what the error message says is in use (default: `out`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = (str(out.resolve()), name)
    if key in _HELD:  # already held by this process (a run inside a run): re-entrant
        _HELD[key] += 1
        try:
            yield out
        finally:
            _HELD[key] -= 1
        return
    handle = _acquire(Path(label or out), out / name, shared, wait)
    _HELD[key] = 1
    try:
        yield out
    finally:
        del _HELD[key]
        _release(handle, shared)


def _acquire(out: Path, path: Path, shared: bool, wait: bool = False):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (documented)
        return None
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        holder = _holder_text(path)
        handle.close()
        raise ConfigError(f"{out} is in use by {holder}; wait for it or use another --out") from None
    if not shared:
        handle.seek(0)
        handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    handle.flush()
    return handle


def _release(handle, shared: bool) -> None:
    if handle is None:
        return
    import fcntl

    if not shared:  # leave an empty lock file (deleting it would race with a process opening it)
        handle.seek(0)
        handle.truncate()
        handle.flush()
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _holder_text(path: Path) -> str:
    """"process PID on HOST (started T)" from the lock file's last line, as far as it can be read."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        info = json.loads(lines[-1])
        return f"process {int(info['pid'])} on {info.get('host', '?')} (started {info.get('started', '?')})"
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def run_in(out: str | Path, command: str, settings: dict[str, Any], overwrite: bool = False,
           owned: Iterable[str] = (), shared: bool = False) -> Iterator[Path]:
    """Lock `out`, then check (or record) its settings; the block runs the resumable work.

    A run that fails before writing any output leaves no trace: the run.json it recorded is
    removed (a corrected re-run is not refused), and so is `out` when this call created it.
    """
    out, owned = Path(out), list(owned)
    created = not out.exists()
    try:
        with exclusive(out, shared=shared):
            fresh = check_same_settings(out, command, settings, overwrite, owned)
            try:
                yield out
            except BaseException:
                if fresh and not any((out / name).exists() for name in owned):
                    (out / RUN_FILE).unlink(missing_ok=True)
                raise
    except BaseException:
        if created:
            _remove_if_only_bookkeeping(out)
        raise


def _remove_if_only_bookkeeping(out: Path) -> None:
    """Remove `out` when all it holds is lock files (a run that failed before writing anything)."""
    try:
        entries = list(out.iterdir())
        if all(p.is_file() and p.name.startswith(LOCK_FILE) for p in entries):
            for path in entries:
                path.unlink()
            out.rmdir()
    except OSError:
        pass


def tidy_failed_start(out: str | Path, created: bool) -> None:
    """After a run failed: drop its run.json when nothing else but locks is there, and `out` if it created it."""
    out = Path(out)
    with contextlib.suppress(OSError):
        if all(p.name == RUN_FILE or p.name.startswith(LOCK_FILE) for p in out.iterdir()):
            (out / RUN_FILE).unlink(missing_ok=True)
    if created:
        _remove_if_only_bookkeeping(out)
