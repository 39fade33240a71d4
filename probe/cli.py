"""The ``tokenprobe`` command. Thin: it parses arguments and calls the library.

Each sub-command lives in its own module under ``probe/commands/`` and defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; they are found
automatically, so adding a command touches no other file.

Errors: every expected error (a :class:`probe.errors.TokenprobeError`, a bad flag, a file that
cannot be read or written) is printed as one ``error: ...`` line and gives exit code 2; the
traceback is shown only with ``--debug`` (anywhere on the command line) or ``TOKENPROBE_DEBUG=1``.

A command may declare, with ``parser.set_defaults``, what it will write, so that it is checked
before any work is done: ``_writes`` (``args -> list of folders``) must be writable;
``_store`` (``args -> store folder``) is removed first when ``--no-resume`` / ``--overwrite`` is given;
``_results`` (``args -> list of files``) are the files whose presence means earlier results would be
replaced: the command refuses unless ``--overwrite`` is given.

Ctrl-C stops a command with one line and exit code 130; finished chunks and stages are kept, and the same
command resumes.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
from types import ModuleType
from typing import NoReturn

import probe.commands as _commands_pkg
from probe.errors import EXIT_USER_ERROR, TokenprobeError, UsageError, check_writable

DEBUG_FLAG = "--debug"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is a :class:`UsageError` (one line from ``main``), not usage + exit, and no
    option is taken for an abbreviation of another (``--pair 4`` is an error, not ``--pairs 4``). Sub-command
    parsers are of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


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
    parser = _Parser(
        prog="tokenprobe",
        description="Latent analysis and interpretability of highly compressed 1D image tokenizers.",
    )
    from probe import __version__

    parser.add_argument("--version", action="version", version=f"tokenprobe {__version__}")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help="show the full traceback of an error (also: TOKENPROBE_DEBUG=1); accepted anywhere")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        if only is None or mod.NAME in only:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def error_message(exc: BaseException) -> str | None:
    """The one-line message of an expected error, or ``None`` for a bug (which keeps its traceback)."""
    if isinstance(exc, TokenprobeError):
        return _one_line(exc.cli or str(exc))
    if isinstance(exc, OSError) and exc.filename is not None:
        # a file or folder the user named (or its parent) that cannot be read or written
        what = {PermissionError: "; choose a writable folder or fix the permissions",
                FileNotFoundError: "; check the path"}.get(type(exc), "")
        return _one_line(f"{exc.filename}: {exc.strerror or exc}{what}")
    return None


def _prepare(args: argparse.Namespace) -> None:
    """Checks before a command does any work: output folders writable; earlier results not replaced without
    --overwrite; --no-resume removes the store."""
    for folder in (getattr(args, "_writes", None) or (lambda a: []))(args):
        check_writable(folder)
    overwrite = getattr(args, "overwrite", False) or getattr(args, "no_resume", False)
    earlier = [p for p in (getattr(args, "_results", None) or (lambda a: []))(args) if os.path.exists(p)]
    if earlier and not overwrite:
        raise UsageError(f"{os.path.dirname(earlier[0]) or '.'} holds the results of an earlier run "
                         f"({os.path.basename(earlier[0])}); pass --overwrite to replace them, or choose another "
                         "--out to keep them")
    store_of = getattr(args, "_store", None)
    if store_of is not None and getattr(args, "no_resume", False):
        from probe.store import remove_store, store_lock

        if store_of(args).exists():
            with store_lock(store_of(args)):  # not while another run writes it
                remove_store(store_of(args))


def main(argv: list[str] | None = None) -> int:
    """Run ``tokenprobe``; returns the exit code (2 for any expected error, printed as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("TOKENPROBE_DEBUG", "").lower() in ("1", "true", "yes", "on")
    argv = [a for a in argv if a != DEBUG_FLAG]
    import warnings

    saved = warnings.formatwarning
    if not debug:  # a warning is one line too ("warning: ..."), not a file:line and source excerpt
        warnings.formatwarning = lambda message, *_a, **_k: f"warning: {_one_line(str(message))}\n"
    try:
        return _main(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted; run the same command again to resume (finished work is kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - sorted into expected errors (one line) and bugs below
        msg = error_message(exc)
        if debug or msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        warnings.formatwarning = saved


def _main(argv: list[str]) -> int:
    # the command is the first word that is not an option (the top level has only flags)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only={command} if command else set())
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    _prepare(args)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
