"""User-facing errors: bad config, bad files, bad model specs, unreachable servers.

Every error a user can fix is a `UserError`; the CLI prints its message on one line and exits
non-zero with no traceback. Anything else is a bug and keeps its traceback. Unparseable MODEL
output is never an error: it is data, scored 0 and recorded by the stage that produced it.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error the user can fix (a bad path, config, spec or server); shown without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or `--set` override is invalid."""


class DataError(UserError):
    """A data file is malformed. The message names the file, the line (when known) and the field."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


class ModelSpecError(UserError):
    """A model spec cannot be resolved or loaded."""


class BackendUnavailable(UserError):
    """An optional backend (vLLM, bitsandbytes, CUDA, ...) is missing on this machine."""


class ServerError(UserError):
    """A remote server (OpenAI-compatible model, judge or teacher) failed after bounded retries."""
