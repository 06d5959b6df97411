"""EchoNet-Dynamic reader: an EchoNet-Dynamic folder (the real release or ``echokdm phantom --layout echonet``)
as MONAI dataset dictionaries.

The layout (``FileList.csv``, ``VolumeTracings.csv``, ``Videos/*.avi``) is described in ``data_specs/layouts.md``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from monai.data import Dataset
from monai.transforms import Compose
from skimage.draw import polygon

from echokdm.data.splits import check_split
from echokdm.errors import InputError
from echokdm.io import load_cine


def echonet_datalist(
    root: str | os.PathLike, split: str | None = None, skipped: Counter | None = None
) -> list[dict[str, Any]]:
    """One dict per video listed in an EchoNet-Dynamic ``FileList.csv`` (real or phantom).

    Keys: ``image`` (AVI path), ``filename``, ``split``, ``ef``, ``edv``, ``esv``, ``fps``,
    ``frame_time_ms``, ``n_frames``, and from ``VolumeTracings.csv``: ``ed`` / ``es`` (the traced frames
    with the larger / smaller traced area) and ``trace_ed`` / ``trace_es`` ((21, 4) X1, Y1, X2, Y2).

    Args:
        root: folder with ``FileList.csv``, ``VolumeTracings.csv`` and ``Videos/``.
        split: keep only ``TRAIN`` / ``VAL`` / ``TEST`` rows (``train``, ``val``, ``test`` in any case;
            None or ``all``: every row).
        skipped: when given, videos that are missing, untraced or traced on frames past their end are counted
            here by reason (``missing video``, ``no tracings``, ``one traced frame``, ``traced frame past the
            end``) and left out, instead of raising.

    Raises:
        InputError: missing tables; without ``skipped``, missing videos or tracings.
    """
    root = Path(root)
    for name in ("FileList.csv", "VolumeTracings.csv"):
        if not (root / name).exists():
            raise InputError(f"{root}: no {name} (EchoNet-Dynamic layout)")
    fl = pd.read_csv(root / "FileList.csv")
    vt = pd.read_csv(root / "VolumeTracings.csv")
    vt["key"] = vt["FileName"].map(lambda s: os.path.splitext(str(s))[0])
    traces = {k: g for k, g in vt.groupby("key", sort=False)}
    if split is not None and split.lower() != "all":
        check_split(split.lower())
    items = []

    def bad(reason: str, message: str) -> None:
        if skipped is None:
            raise InputError(message)
        skipped[reason] += 1

    for r in fl.itertuples(index=False):
        key = os.path.splitext(str(r.FileName))[0]
        if split is not None and split.lower() != "all" and str(r.Split).upper() != split.upper():
            continue
        video = root / "Videos" / f"{key}.avi"
        if not video.exists():
            bad("missing video", f"{video}: listed in FileList.csv but missing")
            continue
        if key not in traces:
            bad("no tracings", f"{root / 'VolumeTracings.csv'}: no tracings for {key}")
            continue
        groups = traces[key].groupby("Frame", sort=False)
        per_frame = {int(f): g[["X1", "Y1", "X2", "Y2"]].to_numpy(np.float64) for f, g in groups}
        if len(per_frame) < 2:
            message = f"{root / 'VolumeTracings.csv'}: {key} has {len(per_frame)} traced frame(s); expected 2"
            bad("one traced frame", message)
            continue
        if skipped is not None and max(per_frame) >= int(r.NumberOfFrames):
            skipped["traced frame past the end"] += 1
            continue
        by_area = sorted(per_frame, key=lambda f: _trace_area(per_frame[f]))
        es, ed = by_area[0], by_area[-1]
        fps = float(r.FPS)
        items.append({
            "image": str(video), "filename": key, "split": str(r.Split), "ef": float(r.EF), "edv": float(r.EDV),
            "esv": float(r.ESV), "fps": fps, "frame_time_ms": 1000.0 / fps if fps > 0 else None,
            "n_frames": int(r.NumberOfFrames), "ed": ed, "es": es,
            "trace_ed": per_frame[ed], "trace_es": per_frame[es],
        })
    return items


def _trace_area(trace: np.ndarray) -> float:
    x = np.concatenate([trace[1:, 0], trace[1:, 2][::-1]])
    y = np.concatenate([trace[1:, 1], trace[1:, 3][::-1]])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def trace_mask(trace: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 mask of an EchoNet tracing (the polygon of the chords' ends, as EchoNet does)."""
    x = np.concatenate([trace[1:, 0], trace[1:, 2][::-1]])
    y = np.concatenate([trace[1:, 1], trace[1:, 3][::-1]])
    rr, cc = polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, np.uint8)
    mask[rr, cc] = 1
    return mask


def load_echonet_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load an :func:`echonet_datalist` entry: ``image`` becomes a MetaTensor (1, T, H, W) in [0, 1]
    (frame time from FileList FPS), ``label_ed`` / ``label_es`` (H, W) uint8 LV masks of the tracings."""
    out = dict(item)
    img = load_cine(item["image"], blank_outside_sector=False)
    if item["frame_time_ms"]:
        img.meta["frame_time_ms"] = item["frame_time_ms"]
    shape = tuple(img.shape[-2:])
    out["image"] = img
    out["label_ed"] = trace_mask(item["trace_ed"], shape)
    out["label_es"] = trace_mask(item["trace_es"], shape)
    return out


def echonet_dataset(root: str | os.PathLike, split: str | None = None, transform: Callable | None = None) -> Dataset:
    """``monai.data.Dataset`` of an EchoNet-Dynamic folder: items as :func:`load_echonet_item`, then ``transform``."""
    steps = [load_echonet_item] + ([transform] if transform is not None else [])
    return Dataset(echonet_datalist(root, split), Compose(steps))


__all__ = ["echonet_datalist", "echonet_dataset", "load_echonet_item", "trace_mask"]
