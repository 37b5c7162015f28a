"""`train-fou`: the project's command line (SPEC §7).

Each subcommand is a module of this package with `HELP`, `add_arguments(parser)`
and `run(args) -> int`; COMMANDS names them. Modules import heavy dependencies
inside `run`, so `train-fou --help` stays fast. Only the CLI prints; libraries
raise, and `main` turns a known error (train_fou.errors.is_user_error) into one
line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from train_fou.errors import TrainFouError, is_user_error

#: subcommand -> module. Only working subcommands are listed here.
COMMANDS: dict[str, str] = {
    'run': 'train_fou.cli.run_cmd',
    'hub': 'train_fou.cli.hub_cmd',
    'sim': 'train_fou.cli.sim_cmd',
    'replay': 'train_fou.cli.replay_cmd',
    'detect': 'train_fou.cli.detect_cmd',
    'bench': 'train_fou.cli.bench_cmd',
}


class CliError(TrainFouError):
    """A user error the CLI reports as one line (bad path, bad option value)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='train-fou', description='Driverless LEGO train: run, replay, simulate, benchmark.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from train_fou.dds import use_project_transport
    use_project_transport()  # before any rclpy.init: camera frames must cross processes
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f'train-fou {args.command}: error: {err}', file=sys.stderr)
        return 2
