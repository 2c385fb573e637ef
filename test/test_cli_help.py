"""Every `mtl-split ... --help` tells the defaults a command runs with."""
from __future__ import annotations

import argparse

from mtl_split_tools.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "mtl-split"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_with_a_default_shows_it_in_help():
    missing = []
    commands = list(_parsers(build_parser()))
    assert len(commands) > 15  # every command and every benchmark
    for name, parser in commands:
        for action in parser._actions:
            default = action.default
            if (isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or default is None
                    or default is False or default in ([], "") or default is argparse.SUPPRESS):
                continue
            shown = parser._get_formatter()._expand_help(action) if action.help else ""
            if "default: " not in shown:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"--help hides the default of: {', '.join(missing)}"
