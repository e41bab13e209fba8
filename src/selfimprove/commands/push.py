"""`selfimprove push RUN_DIR --repo ORG/NAME`: upload a trained adapter (or, with --merged, the merged model).

Nothing is pushed unless this command is run. It uploads `RUN_DIR/adapter/` (PEFT adapter +
tokenizer; RUN_DIR may also be the adapter dir itself) or `RUN_DIR/merged/` (a plain transformers
checkpoint, from training with `--merge`) with huggingface_hub's `create_repo` + `upload_folder`,
logged in as `hf auth login` or `HF_TOKEN` say. Offline (HF_HUB_OFFLINE set), an unreachable
endpoint or a refused login end in one `error:` line, exit 2. It does not write a model card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from selfimprove.errors import UserError

WEIGHTS = ("*.safetensors", "pytorch_model*.bin")


def upload_folder_of(run_dir: Path, merged: bool) -> Path:
    """The folder to upload: the run's adapter dir, or its merged model dir with `merged`."""
    if merged:
        folder = run_dir / "merged"
        if not (folder / "config.json").is_file() or not any(any(folder.glob(p)) for p in WEIGHTS):
            raise UserError(f"{folder}: no merged model here; train with --merge (or `merge: true`) first")
        return folder
    for folder in (run_dir / "adapter", run_dir):
        if (folder / "adapter_config.json").is_file():
            return folder
    raise UserError(f"{run_dir}: no adapter (no adapter/adapter_config.json); give a training output_dir")


def check_online(repo: str) -> None:
    """Refuse early and in one line: a bad repo id, or the hub switched off with HF_HUB_OFFLINE."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise UserError(f"--repo {repo!r}: {str(exc).splitlines()[0]}") from None
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError("push needs the Hugging Face hub, but HF_HUB_OFFLINE is set: unset it to push")


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub call raises: the hub's own errors and its HTTP client's (httpx2, or httpx)."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    found: list[type[BaseException]] = [HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled,
                                        ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def upload(folder: Path, repo: str, private: bool, message: str) -> dict[str, str]:
    """Create the repo if needed and upload `folder`; hub and network failures become one UserError."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    try:
        url = api.create_repo(repo, private=private or None, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=message, repo_type="model")
    except hub_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot push to {repo} on {constants.ENDPOINT}: {first}") from None
    return {"repo": str(url), "uploaded": str(folder), "commit": str(getattr(commit, "commit_url", commit))}


def push(run_dir: Path = typer.Argument(..., help="A training output_dir (or an adapter dir)."),
         repo: str = typer.Option(..., "--repo", help="Hub repo id, ORG/NAME (created if missing)."),
         merged: bool = typer.Option(False, "--merged", help="Push output_dir/merged (base + adapter) instead."),
         private: bool = typer.Option(False, "--private", help="Create the repo private."),
         message: str = typer.Option("Upload from selfimprove", "--message", help="Commit message.")) -> None:
    """Upload a trained adapter (default) or merged model to the Hugging Face hub."""
    folder = upload_folder_of(run_dir, merged)
    check_online(repo)
    typer.echo(json.dumps(upload(folder, repo, private, message), indent=2))


def register(app: typer.Typer) -> None:
    app.command("push")(push)
