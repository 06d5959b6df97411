"""The one progress helper: tqdm bars and stage lines on stderr, silent when not attached to a terminal or when
disabled."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool | None = None) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar labelled ``desc``.

    Args:
        iterable: the work items.
        desc: short label shown before the bar.
        total: number of items when ``iterable`` has no ``len``.
        disable: force the bar off (True) or on (False); default: on when stderr is a terminal and
            ``ECHOKDM_PROGRESS`` is not ``0``, or when ``ECHOKDM_PROGRESS=1``.
    """
    if disable is None:
        disable = not enabled()
    return iter(tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stderr, dynamic_ncols=True))


def enabled() -> bool:
    """Progress output is on: stderr is a terminal and ``ECHOKDM_PROGRESS`` is not ``0``, or ``ECHOKDM_PROGRESS=1``."""
    env = os.environ.get("ECHOKDM_PROGRESS")
    return env == "1" or (env != "0" and sys.stderr.isatty())


def note(message: str) -> None:
    """One progress line on stderr (for stages without a bar), when progress output is on."""
    if enabled():
        tqdm.write(message, file=sys.stderr)
