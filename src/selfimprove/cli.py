"""The `selfimprove` command line: a typer app whose commands live in `selfimprove.commands.*`.

Each module in `selfimprove/commands/` defines `register(app)` and adds its commands or
sub-apps; this module only discovers them and turns user errors into one clear line on stderr
with a non-zero exit code (no traceback). Commands stay thin: they parse options and call
library functions.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

from selfimprove.errors import UserError

app = typer.Typer(
    name="selfimprove",
    help="Make small open LLMs improve themselves at agentic tasks with verifiable outcomes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register_commands() -> None:
    import selfimprove.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    """Entry point: run the app; user errors exit 2 with one line, interrupts exit 130."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
