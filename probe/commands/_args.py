"""Argument types and flags shared by the ``tokenprobe`` commands.

The type functions check a value when the command line is parsed, so a bad value is refused
before any work is done, with argparse naming the flag: ``argument --permutations: must be an
integer >= 1, got 0``. (The leading underscore keeps ``probe.cli`` from taking this module for a
command.)
"""
from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def int_at_least(low: int):
    """An argparse type: an integer ``>= low``."""
    def parse(text: str) -> int:
        v = _int(text)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {v}")
        return v
    parse.__name__ = f"integer >= {low}"  # argparse shows the name in "invalid <name> value"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def open_unit_interval(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a significance level)."""
    v = _float(text)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number with 0 < value < 1, got {text}")
    return v


def comma_choices(choices):
    """An argparse type: a comma-separated list whose every item is one of ``choices``; the text
    is returned unchanged (the command splits it)."""
    known = list(choices)

    def parse(text: str) -> str:
        unknown = [x.strip() for x in text.split(",") if x.strip() and x.strip() not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; choose from {','.join(known)}")
        return text
    parse.__name__ = "comma-separated list"
    return parse


def non_empty_text(text: str) -> str:
    """An argparse type: text that is not empty or blank (a prompt)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


non_empty_text.__name__ = "non-empty text"


def add_overwrite_flag(parser: argparse.ArgumentParser, what: str = "the results in --out") -> None:
    """``--overwrite``: replace earlier results (without it the command refuses to; see ``_results`` in
    :mod:`probe.cli`)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} (without it, earlier results there are never replaced)")


def add_resume_flags(parser: argparse.ArgumentParser, what: str = "the store in --out") -> None:
    """``--no-resume`` / ``--overwrite`` (one flag, two names): start afresh instead of resuming."""
    parser.add_argument("--no-resume", "--overwrite", dest="no_resume", action="store_true",
                        help=f"remove {what} and start afresh instead of resuming into it")


__all__ = ["add_overwrite_flag", "add_resume_flags", "comma_choices", "int_at_least", "non_empty_text",
           "non_negative_int", "open_unit_interval", "positive_int"]
