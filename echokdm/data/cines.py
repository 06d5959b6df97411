"""Folders of DICOM cines (a user's own, unlabelled studies): every ultrasound multi-frame DICOM file below a
folder, found recursively; everything else is skipped and counted by reason.

A file counts as a cine when its header (read without pixel data) is ultrasound (Modality US or an ultrasound
SOP class), holds pixel data and more than one frame. Files are split by :func:`echokdm.data.stable_split` of
their path relative to the folder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai.data import Dataset
from monai.transforms import Compose

from echokdm.data.splits import check_split, stable_split
from echokdm.errors import InputError
from echokdm.io import load_cine
from echokdm.io.dicom import US_SOP_CLASSES, read_dicom_header


@dataclass
class CineFolder:
    """What :func:`cine_folder_datalist` found.

    Attributes:
        items: one dict per cine of the requested split: ``image`` (path), ``name`` (path relative to the
            folder), ``n_frames``, ``split``.
        skipped: reason -> number of files passed over (``not DICOM``, ``not ultrasound``, ``single frame``,
            ``no pixel data``), over the whole folder.
    """

    items: list[dict[str, Any]]
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        """One line: cines found and files skipped, by reason."""
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"{len(self.items)} cine(s)" + (f"; skipped {sum(self.skipped.values())} file(s): {why}" if why else "")


def cine_kind(path: str | os.PathLike) -> str | None:
    """None when ``path`` is an ultrasound DICOM cine, else why not (a :attr:`CineFolder.skipped` reason)."""
    try:
        ds = read_dicom_header(path)
    except InputError:
        return "not DICOM"
    if str(ds.get("Modality", "") or "").strip() != "US" and str(ds.get("SOPClassUID", "") or "") not in US_SOP_CLASSES:
        return "not ultrasound"
    if "Rows" not in ds or "Columns" not in ds:
        return "no pixel data"
    if int(ds.get("NumberOfFrames", 1) or 1) < 2:
        return "single frame"
    return None


def cine_folder_datalist(root: str | os.PathLike, split: str = "all") -> CineFolder:
    """Every ultrasound DICOM cine below ``root`` (recursive, sorted by relative path).

    Args:
        root: the folder.
        split: ``train``, ``val``, ``test`` (:func:`stable_split` of the relative path) or ``all``.

    Returns:
        The cines of ``split`` (possibly none, when the folder's cines all fall in other splits).

    Raises:
        InputError: ``root`` is not a folder, or holds no cine at all.
    """
    root = Path(root)
    check_split(split)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    found, n_cines = CineFolder([]), 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            why = cine_kind(path)
            if why is not None:
                found.skipped[why] += 1
                continue
            n_cines += 1
            rel = path.relative_to(root).as_posix()
            where = stable_split(rel)
            if split in ("all", where):
                n = int(read_dicom_header(path).get("NumberOfFrames", 0) or 0)
                found.items.append({"image": str(path), "name": rel, "n_frames": n, "split": where})
    if n_cines == 0:
        raise InputError(f"{root}: holds no ultrasound DICOM cine ({found.describe()})")
    return found


def load_cine_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load a :func:`cine_folder_datalist` entry: ``image`` becomes the (1, T, H, W) MetaTensor of
    :func:`echokdm.io.load_cine` (burned-in text outside the sector blanked, sector mask in its meta)."""
    return {**item, "image": load_cine(item["image"])}


def cine_folder_dataset(root: str | os.PathLike, split: str = "all", transform: Callable | None = None) -> Dataset:
    """``monai.data.Dataset`` of a cine folder: items as :func:`load_cine_item`, then ``transform``."""
    steps = [load_cine_item] + ([transform] if transform is not None else [])
    return Dataset(cine_folder_datalist(root, split).items, Compose(steps))


__all__ = ["CineFolder", "cine_folder_dataset", "cine_folder_datalist", "cine_kind", "load_cine_item"]
