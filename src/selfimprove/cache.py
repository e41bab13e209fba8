"""Where selfimprove keeps what it builds once and reuses: `$SELFIMPROVE_CACHE`, else `~/.cache/selfimprove`.

Bottom layer (core): any layer may import it. The folder is only named here, never created;
the callers create their own sub-folders (`models/` for the embedded model's converted
checkpoint, `indexes/` for search indexes).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of selfimprove's caches (models, indexes): `$SELFIMPROVE_CACHE` when set, else `~/.cache/selfimprove`."""
    root = os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove"
    return Path(root)
