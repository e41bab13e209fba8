"""Run a `selfimprove` command on several processes by re-executing it under `accelerate launch`.

    python -m selfimprove.launch --num-processes 2 [--cpu] [--config-file configs/accelerate/X.yaml] \\
        -- train sft --config configs/train/sft_cpu.yaml

`launch_command` builds the `accelerate launch ... -m selfimprove ARGS` command line and
`launch_environment` its environment; `relaunch` runs it and returns the exit code;
`maybe_relaunch(n)` is the hook for a `--num-processes N` CLI option (re-executes the current
command line under accelerate unless already inside a launched process). On CPU (no CUDA, or
`--cpu`) the processes are DDP over gloo: accelerate's `--cpu` flag alone starts ONE process
unless MPI is installed, so CPU runs use the torchrun-based multi-process launcher with
`ACCELERATE_USE_CPU=true` (what makes transformers' Trainer pick gloo). With a config file
(configs/accelerate/*.yaml: DDP, DeepSpeed ZeRO-2/3, FSDP) the file decides the backend.
Not guaranteed: that the command itself is distributed-safe (TRL trainers are; every rank runs
the whole command, so every rank prints the summary, and rank 0 owns the logs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from selfimprove.errors import ConfigError, UserError

LAUNCHED_MARKERS = ("LOCAL_RANK", "ACCELERATE_LAUNCHED", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def under_launcher(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a process started by accelerate/torchrun/MPI (do not launch again).

    >>> under_launcher({"LOCAL_RANK": "0"}), under_launcher({})
    (True, False)
    """
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHED_MARKERS)


def wants_cpu(cpu: bool | None) -> bool:
    """`cpu` as given, or True when there is no CUDA device."""
    if cpu is not None:
        return cpu
    import torch

    return not torch.cuda.is_available()


def launch_command(cli_args: Sequence[str], num_processes: int, config_file: str | None = None,
                   cpu: bool = False, main_process_port: int | None = None,
                   log_dir: str | None = None) -> list[str]:
    """The `accelerate launch` command that runs `selfimprove CLI_ARGS` on `num_processes` processes.

    >>> launch_command(["train", "sft", "-c", "x.yaml"], 2, cpu=True)[3:]
    ['launch', '--num_processes', '2', '--multi_gpu', '-m', 'selfimprove', 'train', 'sft', '-c', 'x.yaml']
    """
    if num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
               "--num_processes", str(num_processes)]
    if config_file:
        command += ["--config_file", str(config_file)]
    elif num_processes > 1:
        command += ["--multi_gpu"]  # the torchrun-based launcher; on CPU the env below selects gloo
    if main_process_port is not None:
        command += ["--main_process_port", str(main_process_port)]
    if log_dir:
        command += ["--tee", "3", "--log_dir", str(log_dir)]
    return command + ["-m", "selfimprove", *cli_args]


def launch_environment(cpu: bool, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the launched processes (ACCELERATE_USE_CPU=true for CPU/gloo DDP)."""
    environment = dict(os.environ if base is None else base)
    if cpu:
        environment["ACCELERATE_USE_CPU"] = "true"
        environment.setdefault("OMP_NUM_THREADS", "1")
    return environment


def relaunch(cli_args: Sequence[str], num_processes: int, config_file: str | None = None, cpu: bool | None = None,
             main_process_port: int | None = None, log_dir: str | None = None) -> int:
    """Run `selfimprove CLI_ARGS` under accelerate on `num_processes` processes; returns the exit code."""
    if config_file and not os.path.isfile(config_file):
        raise ConfigError(f"--config-file {config_file}: no such file (see configs/accelerate/)")
    on_cpu = wants_cpu(cpu)
    command = launch_command(cli_args, num_processes, config_file, on_cpu, main_process_port, log_dir)
    return subprocess.call(command, env=launch_environment(on_cpu))


def strip_option(argv: Sequence[str], option: str) -> list[str]:
    """argv without `option VALUE` / `option=VALUE`.

    >>> strip_option(["train", "--num-processes", "2", "sft"], "--num-processes")
    ['train', 'sft']
    >>> strip_option(["train", "--num-processes=2"], "--num-processes")
    ['train']
    """
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def maybe_relaunch(num_processes: int | None, option: str = "--num-processes",
                   argv: Sequence[str] | None = None) -> None:
    """Hook for a CLI `--num-processes N` option: with N > 1 and not yet launched, re-run under accelerate and exit."""
    if not num_processes or num_processes <= 1 or under_launcher():
        return
    cli_args = strip_option(list(sys.argv[1:] if argv is None else argv), option)
    raise SystemExit(relaunch(cli_args, num_processes))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m selfimprove.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--config-file", default=None, help="configs/accelerate/*.yaml (DDP, ZeRO-2/3, FSDP).")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=None,
                        help="Force CPU/gloo (default: CPU when there is no CUDA).")
    parser.add_argument("--main-process-port", type=int, default=None)
    parser.add_argument("--log-dir", default=None, help="Also write each rank's stdout/stderr under this dir.")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="-- then the selfimprove command")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args
    if not cli_args:
        raise ConfigError("give the selfimprove command after --, e.g. -- train sft --config X.yaml")
    return relaunch(cli_args, args.num_processes, args.config_file, args.cpu, args.main_process_port, args.log_dir)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
