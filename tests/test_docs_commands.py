"""Every command in README.md and docs/*.md is checked: the runnable ones are run, the others parsed.

Commands are read from fenced blocks: ```bash / ```sh / ```console blocks (in console blocks, the
lines starting with `$ `; the lines after a command are its expected output) and plain ```
blocks (their lines starting with `selfimprove `). A block marked runnable, by the HTML comment
`<!-- runnable -->` (or `<!-- runnable exit=N -->`) on the line right above its fence, is run
command by command with bash in a scratch copy of the repository layout (offline, no GPU, a
time limit each); each must exit 0 (or N), and in console blocks each expected output line must
appear in what it printed. Every other `selfimprove` command (also after `accelerate launch ...
-m selfimprove` and `python -m selfimprove.launch ... --`) must name a known command with known
options, and the repository files it names (configs/, examples/, scripts/, src/, tests/) must
exist. Commands that need the embedded model, a GPU, a server or long runs are not marked runnable.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*runnable(?:\s+exit=(\d+))?\s*-->\s*$")
SHELL = {"bash", "sh", "shell", "console"}
REPO_PATH = re.compile(r"^(configs|examples|scripts|src|tests|benchmarks)/[^*?$\[\]{}]+$")
TIMEOUT_S = 240


@dataclass(frozen=True)
class Block:
    """A fenced block: where it is, its info string, its lines, and its runnable marker (exit code)."""

    path: Path
    line: int
    info: str
    lines: tuple[str, ...]
    exit_code: int | None  # None: not marked runnable

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One shell command of a block, continuation lines joined, with the output shown after it."""

    text: str
    expected: tuple[str, ...] = ()


def fenced_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = re.match(r"^```(\S*)", lines[index])
        if fence is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        marker = MARKER.match(lines[index - 1]) if index else None
        exit_code = (int(marker.group(1) or 0)) if marker else None
        blocks.append(Block(path, index + 1, fence.group(1), tuple(lines[index + 1 : end]), exit_code))
        index = end + 1
    return blocks


def commands(block: Block) -> list[Command]:
    """The commands of a block (see the module docstring for which lines count)."""
    found: list[Command] = []
    lines = list(block.lines)
    while lines:
        line = lines.pop(0)
        if block.info == "console":
            if not line.startswith("$ "):
                if found and line.strip():
                    found[-1] = Command(found[-1].text, (*found[-1].expected, line.strip()))
                continue
            line = line[2:]
        elif block.info not in SHELL and not line.startswith("selfimprove "):
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and lines:
            line = line.rstrip()[:-1] + " " + lines.pop(0).strip()
        found.append(Command(line.strip()))
    return found


ALL_BLOCKS = [block for path in DOCS for block in fenced_blocks(path)]
RUNNABLE = [block for block in ALL_BLOCKS if block.exit_code is not None]
ALL_COMMANDS = [(block, command) for block in ALL_BLOCKS for command in commands(block)]


# ------------------------------------------------------------------ parsing what is not run


def selfimprove_args(argv: list[str]) -> list[str] | None:
    """The arguments given to `selfimprove` in a command line, or None when it does not run it."""
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    if argv[:1] == ["selfimprove"]:
        return argv[1:]
    for index, token in enumerate(argv[:-1]):
        if token == "-m" and argv[index + 1] == "selfimprove":
            return argv[index + 2 :]
        if token == "-m" and argv[index + 1] == "selfimprove.launch":
            return argv[argv.index("--") + 1 :] if "--" in argv else []
    return None


def tokens(text: str) -> list[str]:
    """Shell words without comments, `...` placeholders and the brackets of `[--optional ARGS]`."""
    words = [word.strip("[]") for word in shlex.split(text, comments=True)]
    return [word for word in words if word and word != "..." and word != "|"]


def find_option(command, token: str):
    name = token.split("=", 1)[0]
    if name == "--help":
        return "help"
    return next((p for p in command.params if name in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))),
                None)


def takes_value(option, token: str) -> bool:
    return option != "help" and not getattr(option, "is_flag", False) and "=" not in token


def is_option(token: str) -> bool:
    return token.startswith("--") or re.fullmatch(r"-[A-Za-z]", token) is not None


def check_cli(args: list[str]) -> None:
    """Walk the typer/click command tree along `args`; fail on an unknown command or option."""
    from typer.main import get_command

    from selfimprove.cli import app

    command, path, index = get_command(app), ["selfimprove"], 0
    while True:
        subcommands = getattr(command, "commands", None)
        while index < len(args) and is_option(args[index]) and subcommands is not None:
            option = find_option(command, args[index])
            assert option is not None, f"{' '.join(path)}: unknown option {args[index]}"
            index += 2 if takes_value(option, args[index]) else 1
        if subcommands is None or index >= len(args):
            break
        assert args[index] in subcommands, f"{' '.join(path)}: unknown command {args[index]!r}"
        command, index = subcommands[args[index]], index + 1
        path.append(command.name)
    unknown = [token for token in args[index:] if is_option(token) and find_option(command, token) is None]
    if unknown and (command.context_settings or {}).get("ignore_unknown_options"):
        check_trainer_flags(path, unknown)  # `train ...`: TRL-style trainer flags
    else:
        assert not unknown, f"{' '.join(path)}: unknown option(s) {unknown}"


def check_trainer_flags(path: list[str], flags: list[str]) -> None:
    """Flags a train command passes to its TRL config class must be fields of that class."""
    import trl

    from selfimprove.errors import UserError
    from selfimprove.train.config import trainer_flags

    config_class = getattr(trl, {"sft": "SFTConfig", "dpo": "DPOConfig"}.get(path[-1], "GRPOConfig"))
    try:
        trainer_flags([flag.split("=", 1)[0] for flag in flags], config_class)
    except UserError as exc:
        raise AssertionError(f"{' '.join(path)}: unknown option: {exc}") from None


def check_paths(words: list[str]) -> None:
    for word in words:
        for value in (word, word.partition("=")[2]):
            if REPO_PATH.match(value):
                assert (ROOT / value).exists(), f"no such file in the repository: {value}"


@pytest.mark.parametrize("block, command", ALL_COMMANDS, ids=[f"{b.where}:{c.text[:50]}" for b, c in ALL_COMMANDS])
def test_documented_command_names_known_commands_options_and_files(block, command):
    words = tokens(command.text)
    check_paths(words)
    if words[:1] == ["bash"] and len(words) > 1 and words[1].endswith(".sh"):
        assert (ROOT / words[1]).is_file(), f"{block.where}: no script {words[1]}"
    args = selfimprove_args(words)
    if args is not None:
        check_cli(args)


def test_commands_are_found_and_many_are_runnable():
    assert len(ALL_COMMANDS) > 40
    assert sum(selfimprove_args(tokens(c.text)) is not None for _, c in ALL_COMMANDS) > 40
    assert sum(len(commands(block)) for block in RUNNABLE) >= 8


def test_every_runnable_marker_is_right_above_a_shell_block():
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[:-1], 1):
            if MARKER.match(line):
                assert re.match(r"^```(bash|sh|shell|console)\s*$", lines[number]), f"{path.name}:{number}"


@pytest.mark.parametrize("text, problem", [
    ("selfimprove evaluate --task countdown", "unknown command 'evaluate'"),
    ("selfimprove eval --tsak countdown", "unknown option"),
    ("selfimprove train grpo configs/grpo/no-such.yaml", "no such file"),
    ("accelerate launch -m selfimprove train sft --confg x.yaml", "unknown option"),
    ("selfimprove train grpo configs/grpo/countdown-cpu.yaml --max_step 3", "unknown option"),
])
def test_the_checker_catches_wrong_commands(text, problem):
    with pytest.raises(AssertionError, match=problem):
        test_documented_command_names_known_commands_options_and_files(ALL_BLOCKS[0], Command(text))


def test_the_checker_accepts_right_commands():
    for text in ("selfimprove train grpo configs/grpo/countdown-cpu.yaml --max_steps 3 --set trainer.beta=0.0",
                 "selfimprove --allow-import my_mod eval --task countdown --format single [--limit 4] ...",
                 "ACCELERATE_USE_CPU=true accelerate launch --num_processes 2 -m selfimprove train sft --config x.yaml"):
        test_documented_command_names_known_commands_options_and_files(ALL_BLOCKS[0], Command(text))


# ------------------------------------------------------------------ running what is marked runnable


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A scratch directory laid out like the checkout (read-only parts linked), plus ../shared."""
    root = tmp_path_factory.mktemp("docs") / "main"
    root.mkdir()
    for name in ("configs", "examples", "scripts", "src", "tests", "docs", "benchmarks", "README.md",
                 "pyproject.toml"):
        if (ROOT / name).exists():
            (root / name).symlink_to(ROOT / name)
    if (ROOT.parent / "shared").exists():
        (root.parent / "shared").symlink_to(ROOT.parent / "shared")
    return root


def run_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": "", "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")])}
    env.pop("SELFIMPROVE_ALLOW_IMPORT", None)
    return env


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_runnable_block(block, workspace):
    for command in commands(block):
        result = subprocess.run(["bash", "-c", command.text], cwd=workspace, env=run_env(), capture_output=True,
                                text=True, timeout=TIMEOUT_S)
        printed = " ".join((result.stdout + result.stderr).split())
        assert result.returncode == block.exit_code, f"{block.where}: {command.text}\n{result.stdout}\n{result.stderr}"
        for line in command.expected:
            if line != "...":
                assert " ".join(line.split()) in printed, f"{block.where}: {command.text}: missing {line!r}"

