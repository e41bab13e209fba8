"""The `selfimprove` command line: a typer app whose commands live in `selfimprove.commands.*`.

Each module in `selfimprove/commands/` defines `register(app)` and adds its commands or
sub-apps; `COMMAND_MODULES` lists them by name (no discovery by scanning: a new command file is
added there, and a test checks the list matches the folder). Each module imports only typer at
the top (its heavy imports live inside its commands), so `selfimprove --help` stays light. This
module registers them and turns every bad input into ONE line on stderr,
`error: ...`, printed literally (never parsed as markup), with exit code 2 and no traceback:
user errors (`UserError`, raised by library code), click's usage errors (a bad option value,
a count below its minimum, an unknown command), settings models refusing an option value, and an
OS error on a path the user named (read-only or full output directory) alike. Anything else is a
bug and keeps its traceback. Commands stay thin: they parse options and call library functions.
"""

from __future__ import annotations

import errno
import importlib
import sys
from typing import Any

import typer
from pydantic import ValidationError
from typer._click import Context  # typer vendors click: its exceptions, not click's, reach us
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from selfimprove.errors import UserError


def error_line(message: str) -> str:
    """`message` as the one `error:` line the CLI prints: newlines folded, always encodable.

    >>> error_line("pip install 'selfimprove[dense]'\\nthen retry [/]")
    "error: pip install 'selfimprove[dense]' then retry [/]"
    """
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return "error: " + text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_error(message: str) -> None:
    """Write the `error:` line to stderr as plain text (paths and brackets shown as they are)."""
    typer.echo(error_line(message), err=True)


def _usage_message(exc: UsageError) -> str:
    command = exc.ctx.command_path if exc.ctx is not None else "selfimprove"
    return f"{command}: {exc.format_message()} (see '{command} --help')"


def _validation_message(exc: ValidationError) -> str:
    """Settings built from command options failed validation: name each option and the problem."""
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())
    return f"invalid options ({exc.title}): {problems}"


class SafeGroup(TyperGroup):
    """The root command group: user and usage errors end as one literal `error:` line, exit 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: Any) -> Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            print_error(_usage_message(exc))
            raise typer.Exit(exc.exit_code) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            print_error(_usage_message(exc))
            raise typer.Exit(exc.exit_code) from None
        except UserError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except ValidationError as exc:  # a settings model built from options (a bad value typer let through)
            print_error(_validation_message(exc))
            raise typer.Exit(2) from None
        except OSError as exc:  # a path the user gave cannot be read or written (read-only, full disk, ...)
            if exc.errno == errno.EPIPE or not exc.filename:
                raise
            print_error(f"{exc.filename}: {exc.strerror or exc}")
            raise typer.Exit(2) from None


app = typer.Typer(
    name="selfimprove",
    help="Make small open LLMs improve themselves at agentic tasks with verifiable outcomes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SafeGroup,
)


def _print_version(value: bool) -> None:
    if value:
        from selfimprove.commands.env import package_version

        typer.echo(f"selfimprove {package_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    allow_import: list[str] = typer.Option(
        [], "--allow-import", metavar="MODULE",
        help="Allow MODULE:attr names (rewards, tasks, formats, scripted: models) from MODULE and its submodules; "
             "repeatable. Never the standard library. See docs/reliability.md."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the selfimprove version and exit."),
) -> None:
    """Make small open LLMs improve themselves at agentic tasks with verifiable outcomes."""
    from selfimprove.registry import allow_imports

    allow_imports(allow_import)


# the command groups, in the order `selfimprove --help` lists them: selfimprove.commands.<name>.register(app)
COMMAND_MODULES = ("agent", "convert", "distill", "env", "eval", "grpo", "index", "likelihood", "models", "push", "quickstart",
                   "report", "rewards", "rrr", "run", "score", "train")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"selfimprove.commands.{name}").register(app)


_register_commands()


def main() -> None:
    """Entry point: run the app; user errors exit 2 with one line, interrupts exit 130."""
    try:
        app()
    except UserError as exc:  # raised outside a command (while the app starts)
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
