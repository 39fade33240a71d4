"""The ``tokenprobe`` command. Thin: it parses arguments and calls the library.

Each sub-command lives in its own module under ``probe/commands/`` and defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; they are found
automatically, so adding a command touches no other file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import probe.commands as _commands_pkg


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"probe.commands.{info.name}"))
    return mods


def build_parser(only: set[str] | None = None) -> argparse.ArgumentParser:
    """The full parser, or, with ``only``, one whose listed commands alone get their options.

    Some commands' options come from heavy modules (open_clip, the trainers); ``main`` asks
    only for the command being run, so ``tokenprobe --help`` and light commands start fast.
    """
    parser = argparse.ArgumentParser(
        prog="tokenprobe",
        description="Latent analysis and interpretability of highly compressed 1D image tokenizers.",
    )
    from probe import __version__

    parser.add_argument("--version", action="version", version=f"tokenprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        if only is None or mod.NAME in only:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the command is the first word that is not an option (the top level has only flags)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only={command} if command else set())
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
