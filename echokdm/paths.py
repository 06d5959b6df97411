"""Input files checked before they are opened, with a message that says what is wrong with the path."""

from __future__ import annotations

import os
from pathlib import Path

from echokdm.errors import InputError


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` when it is a regular file (or a link to one).

    Args:
        path: the input.
        what: what the file is, for the message (``"keypoint file"``).

    Raises:
        InputError: missing, a broken link, a folder, or a pipe, socket or device (reading one could wait forever).
    """
    p = Path(path)
    if p.is_file():
        return p
    if p.is_symlink() and not p.exists():
        raise InputError(f"{what} {p} is a symbolic link that cannot be followed")
    if not p.exists():
        raise InputError(f"{what} {p} does not exist")
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder, not a file")
    raise InputError(f"{what} {p} is a pipe, socket or device, not a regular file")
