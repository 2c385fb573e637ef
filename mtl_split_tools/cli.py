"""`mtl-split`: the one CLI. Each subcommand lives in its own module and registers itself.

A command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int`. Modules import heavy dependencies (torch, rclpy) inside `func`, so
`mtl-split --help` stays fast and a robot without torch can still run the runtime commands.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from mtl_split_core.errors import MtlSplitError
from mtl_split_core.notices import show_on_stderr

# Subcommand modules, in --help order.
COMMAND_MODULES = [
    "mtl_split_training.commands",  # train, save-backbone, export, compare, build-engine, list
    "mtl_split_tools.bag_command",  # make-bag
    "mtl_split_tools.launch_command",  # launch
    "mtl_split_tools.evaluate_command",  # evaluate
    "mtl_split_bench.command",  # bench ...
    "mtl_split_tools.plan_command",  # plan
    "mtl_split_tools.demo_command",  # demo
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows each option's default (those that say something: not None, off or empty)
    and keeps the descriptions' own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default in ([], "") \
                or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every parser of the CLI, subcommands included, formats its help with HelpFormatter."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mtl-split", description="mtl_split: multi-task perception split between robot (backbone) and server (heads).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue  # that part of the package is not installed (e.g. no training on a robot)
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["mtl-split", *argv])  # as typed, every flag: for "made with" lines
    show_on_stderr()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mtl-split: interrupted", file=sys.stderr)
        return 130
    except (MtlSplitError, FileNotFoundError, PermissionError) as e:
        print(f"mtl-split {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # e.g. training on a runtime-only (robot) install
        print(f"mtl-split {args.command}: error: needs the Python package {e.name!r}, which this install lacks; "
              "`make setup` installs the full (training) profile", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
