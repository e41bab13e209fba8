"""CLI command modules. Each defines `register(app: typer.Typer)`; `selfimprove.cli.COMMAND_MODULES` lists them.

Modules here must import heavy libraries inside the command functions, so `selfimprove --help`
stays fast.
"""
