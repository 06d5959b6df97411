"""Training, validation and test splits of user data sets: the release's own split where it has one, else a
split by a stable hash of the item's name (the same on every machine and run, and unchanged when items are
added)."""

from __future__ import annotations

import hashlib

from echokdm.errors import InputError

#: split names a data source accepts (``all`` = every item)
SPLITS = ("train", "val", "test", "all")
#: percent of items that :func:`stable_split` puts in train and val (the rest is test)
STABLE_TRAIN, STABLE_VAL = 80, 10


def check_split(split: str) -> str:
    """``split`` when it is one of :data:`SPLITS`.

    Raises:
        InputError: any other value.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def stable_split(name: str) -> str:
    """``train`` (80 %), ``val`` (10 %) or ``test`` (10 %) from the SHA-1 of ``name``."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < STABLE_TRAIN else "val" if bucket < STABLE_TRAIN + STABLE_VAL else "test"


__all__ = ["SPLITS", "check_split", "stable_split"]
