"""The one progress helper: tqdm bars on stderr, silent when not attached to a terminal or when disabled."""

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
        env = os.environ.get("ECHOKDM_PROGRESS")
        disable = env == "0" or (env != "1" and not sys.stderr.isatty())
    return iter(tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stderr, dynamic_ncols=True))
