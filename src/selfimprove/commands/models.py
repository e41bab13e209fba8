"""`selfimprove models prepare|list` and `selfimprove generate`."""

from __future__ import annotations

import json

import typer

from selfimprove.models.embedded import DEFAULT_MODEL

models_app = typer.Typer(help="Manage models (the embedded default, hub ids, servers).", no_args_is_help=True)


@models_app.command("prepare")
def prepare(alias: str = typer.Argument(DEFAULT_MODEL, help="Embedded model alias."),
            force: bool = typer.Option(False, help="Convert again even if cached.")) -> None:
    """Convert an embedded GGUF model to a float checkpoint once and print its path."""
    from selfimprove.models.embedded import prepare_embedded_model

    typer.echo(prepare_embedded_model(alias, force=force))


@models_app.command("list")
def list_models() -> None:
    """List the embedded model aliases and the spec forms accepted by --model."""
    from selfimprove.models.embedded import EMBEDDED_MODELS

    for alias, (package, filename) in EMBEDDED_MODELS.items():
        typer.echo(f"{alias}\t(embedded: {package} / {filename})")
    typer.echo("ORG/NAME or PATH\t(transformers)\nopenai:MODEL@URL\t(OpenAI-compatible server)\nvllm:MODEL\t(GPU)")


def generate(
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="User message; repeat for a batch."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec (see `models list`)."),
    system: str | None = typer.Option(None, help="Optional system message."),
    max_tokens: int = typer.Option(128, min=1),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0),
    n: int = typer.Option(1, min=1, help="Samples per prompt."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string; repeatable."),
    seed: int | None = typer.Option(0, help="Sampling seed (the same default as eval and distill)."),
    as_json: bool = typer.Option(False, "--json", help="Print completions as JSON lines."),
) -> None:
    """Generate completions for one or more prompts (a quick look at a model)."""
    from selfimprove.data.jsonl import writable, writable_text
    from selfimprove.models import SamplingParams, load_generator

    generator = load_generator(model)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n,
                            stop=tuple(stop), seed=seed)
    prefix = [{"role": "system", "content": system}] if system else []
    results = generator.generate([prefix + [{"role": "user", "content": p}] for p in prompt], params)
    for text, completions in zip(prompt, results, strict=True):
        for completion in completions:
            if as_json:
                typer.echo(json.dumps(writable({"prompt": text, "completion": completion.text,
                                                "finish_reason": completion.finish_reason}), ensure_ascii=False))
            else:
                typer.echo(writable_text(completion.text))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("generate")(generate)
