"""Stage manifests: what a finished stage ran with, so a re-run can skip it safely.

A stage directory holds `manifest.json`: the stage config, the sha256 of each input file (or of
every file in an input directory), package versions, start/end times and status. A stage is
skipped when its manifest says "done" and the config and input hashes are unchanged. The
manifest is written atomically; a crash mid-stage leaves status "running", so the stage runs
again (stages themselves resume from their own append-only records).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from selfimprove.run_dir import versions

MANIFEST = "manifest.json"


def hash_path(path: Path) -> str:
    """sha256 of a file, or of the sorted (relative name, file hash) pairs of a directory."""
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST):
            digest.update(str(child.relative_to(path)).encode() + b"\0" + hash_path(child).encode())
    elif path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        return "missing"
    return digest.hexdigest()


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((stage_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_manifest(stage_dir: Path, manifest: dict[str, Any]) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    tmp = stage_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, stage_dir / MANIFEST)


def new_manifest(stage: dict[str, Any], input_hashes: dict[str, str]) -> dict[str, Any]:
    return {"stage": stage, "inputs": input_hashes, "versions": versions(), "status": "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": None, "outputs": {}}


def is_done(stage_dir: Path, stage: dict[str, Any], input_hashes: dict[str, str]) -> bool:
    manifest = read_manifest(stage_dir)
    return bool(manifest and manifest.get("status") == "done" and manifest.get("stage") == stage
                and manifest.get("inputs") == input_hashes)
