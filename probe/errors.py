"""The errors a user can cause (bad input, missing files, a busy store), as opposed to bugs.

Every such error derives from :class:`TokenprobeError`. ``tokenprobe`` (``probe.cli.main``) prints
one ``error: ...`` line for them and exits with code 2; anything else is a bug and keeps its
traceback. Each message names the file, key or flag at fault and says what to do.

The concrete classes live with the code that raises them (``ManifestError`` in
``probe.data.manifest``, ``StoreError`` in ``probe.store``, ...) and also derive from the builtin
they always were (``ValueError``, ``RuntimeError``), so existing ``except`` clauses keep working.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

EXIT_USER_ERROR = 2  # argparse's code for a usage error; used for every expected error


class TokenprobeError(Exception):
    """Base class of the errors caused by input or environment (not by a bug).

    ``cli``: an alternative message for the command line, where it differs from the Python one
    (e.g. ``--random-init`` instead of ``random_init=True``).
    """

    def __init__(self, message: str = "", *, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli = cli


class UsageError(TokenprobeError, ValueError):
    """A flag or argument value that is out of range or inconsistent."""


class UnknownFieldError(TokenprobeError, ValueError):
    """A config mapping (JSON, YAML, a zoo record) with a key that is no field of its dataclass."""


def check_fields(cls: type, keys: Iterable[str], where: str) -> None:
    """Raise :class:`UnknownFieldError` naming the ``keys`` that are no field of the dataclass ``cls``, and the
    known fields (``where`` names the config in the message); the one check every ``from_dict`` makes."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise UnknownFieldError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")


def check_images(images: torch.Tensor, who: str, size: int | None = None) -> None:
    """Raise one ValueError naming ``who`` unless ``images`` is a batch ``[B, 3, H, W]`` (with ``H = W = size``
    when ``size`` is given); the one check of every model's image input."""
    if images.ndim != 4 or images.shape[1] != 3 or (size is not None and tuple(images.shape[2:]) != (size, size)):
        side = "H, W" if size is None else f"{size}, {size}"
        raise ValueError(f"{who}: expected images [B, 3, {side}] in [0, 1], got shape {tuple(images.shape)}")


class OutputNotWritableError(TokenprobeError, PermissionError):
    """The output folder cannot be written (checked before any work is done)."""


def check_writable(folder: str | os.PathLike, what: str = "--out") -> Path:
    """Raise :class:`OutputNotWritableError` unless ``folder`` can be created and written to.

    Looks at ``folder`` or, when it does not exist yet, its nearest existing ancestor, and creates
    nothing (so a refused run leaves no trace). ``what`` names the flag or field in the message.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputNotWritableError(
            f"{what} {folder}: {probe} is a file, not a folder; choose another output folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f" (its existing parent {probe} is read-only)"
        raise OutputNotWritableError(
            f"{what} {folder}: cannot write there{where}; choose a writable output folder "
            "or fix its permissions")
    return folder


__all__ = ["EXIT_USER_ERROR", "OutputNotWritableError", "TokenprobeError", "UsageError", "check_writable"]
