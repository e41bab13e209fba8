"""The CLI's command groups are listed explicitly (`cli.COMMAND_MODULES`), not discovered by scanning,
and listing them keeps `selfimprove --help` light (no torch, transformers or trl imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import selfimprove.commands
from selfimprove import cli


def test_the_list_names_every_command_file_and_nothing_else():
    folder = Path(selfimprove.commands.__file__).parent
    files = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
    assert sorted(cli.COMMAND_MODULES) == sorted(files)
    assert len(set(cli.COMMAND_MODULES)) == len(cli.COMMAND_MODULES)


def test_help_and_every_listed_module_import_no_heavy_library():
    code = ("import importlib, sys\nfrom typer.testing import CliRunner\nfrom selfimprove.cli import COMMAND_MODULES, app\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "assert all(f'selfimprove.commands.{name}' in sys.modules for name in COMMAND_MODULES)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
