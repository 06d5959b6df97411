"""CAMUS reader: a CAMUS-layout folder (the real releases or ``echokdm phantom --layout camus``) as MONAI
dataset dictionaries.

The layout (``patientNNNN/`` with ``Info_4CH.cfg``, half sequences and ``_gt`` masks as NIfTI) is described in
``data_specs/layouts.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.data import Dataset
from monai.transforms import Compose

from echokdm.errors import InputError
from echokdm.io import load_cine, loop_spacing, read_segmentation


def read_camus_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """``Info_2CH.cfg`` / ``Info_4CH.cfg`` as a dict (numbers converted)."""
    out: dict[str, Any] = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        try:
            num = float(value)
            out[key] = int(num) if num.is_integer() and "." not in value else num
        except ValueError:
            out[key] = value
    return out


def camus_datalist(root: str | os.PathLike, view: str = "4CH") -> list[dict[str, Any]]:
    """One dict per ``patientNNNN`` folder of a CAMUS-layout root (real CAMUS or phantom).

    Keys: ``image`` / ``label`` (half-sequence and its ``_gt`` paths), ``image_ed``, ``label_ed``,
    ``image_es``, ``label_es``, ``ed`` / ``es`` (0-based indices into the half sequence), ``ef``, ``edv``,
    ``esv``, ``frame_time_ms`` (None if the cfg has no FrameRate), ``quality``, ``patient``, ``view``.

    Raises:
        InputError: no patient folder, or a patient without the files of ``view``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    patients = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not patients:
        raise InputError(f"{root}: no patientNNNN folders (CAMUS layout)")
    items = []
    for pdir in patients:
        pid = pdir.name
        cfg_path = pdir / f"Info_{view}.cfg"
        base = pdir / f"{pid}_{view}"
        need = [cfg_path] + [Path(f"{base}_{s}.nii.gz") for s in ("half_sequence", "half_sequence_gt")]
        missing = [p.name for p in need if not p.exists()]
        if missing:
            raise InputError(f"{pdir}: missing {', '.join(missing)}")
        cfg = read_camus_cfg(cfg_path)
        n = int(cfg.get("NbFrame", 0))
        rate = cfg.get("FrameRate")
        items.append({
            "image": f"{base}_half_sequence.nii.gz", "label": f"{base}_half_sequence_gt.nii.gz",
            "image_ed": f"{base}_ED.nii.gz", "label_ed": f"{base}_ED_gt.nii.gz",
            "image_es": f"{base}_ES.nii.gz", "label_es": f"{base}_ES_gt.nii.gz",
            "ed": int(cfg["ED"]) - 1, "es": int(cfg["ES"]) - 1, "n_frames": n,
            "ef": cfg.get("EF"), "edv": cfg.get("LVedv"), "esv": cfg.get("LVesv"),
            "frame_time_ms": 1000.0 / float(rate) if rate else None, "quality": cfg.get("ImageQuality"),
            "patient": pid, "view": view,
        })
    return items


def load_camus_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load a :func:`camus_datalist` entry: ``image`` becomes a MetaTensor (1, T, H, W) in [0, 1],
    ``label`` a (T, H, W) uint8 array, and ``spacing`` the (dy, dx) of the image header."""
    out = dict(item)
    img = load_cine(item["image"], blank_outside_sector=False)
    out["image"] = img
    out["label"] = read_segmentation(item["label"])
    out["spacing"] = loop_spacing(img) or (None, None)
    if out["frame_time_ms"] is not None:
        img.meta["frame_time_ms"] = out["frame_time_ms"]
    return out


def camus_dataset(root: str | os.PathLike, view: str = "4CH", transform: Callable | None = None) -> Dataset:
    """A ``monai.data.Dataset`` over a CAMUS-layout folder; items as :func:`load_camus_item` then ``transform``."""
    steps = [load_camus_item] + ([transform] if transform is not None else [])
    return Dataset(camus_datalist(root, view), Compose(steps))


__all__ = ["camus_datalist", "camus_dataset", "load_camus_item", "read_camus_cfg"]
