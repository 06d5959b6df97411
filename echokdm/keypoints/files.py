"""Keypoint files: one JSON format (spec: ``data_specs/keypoints.schema.json``) and a flat CSV table.

JSON holds everything and round-trips exactly. The CSV has one row per point with the columns
``frame, phase, structure, index, x, y, x_mm, y_mm`` (``structure`` is ``endo`` or ``epi``, ``index`` 0..19
within the structure, mm columns empty when the spacing is unknown); it round-trips the frames, phases and
coordinates exactly and the spacing to 12 significant digits, but not the image size.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echokdm.errors import InputError
from echokdm.paths import regular_file

FORMAT = "echokdm-keypoints"
VERSION = 1
CSV_COLUMNS = ("frame", "phase", "structure", "index", "x", "y", "x_mm", "y_mm")
PHASES = ("ED", "ES")


@dataclass
class KeypointTrack:
    """Keypoints of some frames of one loop.

    Args:
        keypoints: (F, K, 2) float64 points (x, y) in pixels of the source grid, K = 20 (endocardium) or
            40 (endocardium then epicardium).
        frames: the F frame indices (0-based), increasing.
        spacing_mm: (dy, dx) in mm, or None when unknown.
        image_size: (H, W) of the source grid, or None.
        phases: frame index -> "ED" or "ES" for the frames that are one.
    """

    keypoints: np.ndarray
    frames: list[int]
    spacing_mm: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None
    phases: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        k = self.keypoints
        if k.ndim != 3 or k.shape[1] not in (20, 40) or k.shape[2] != 2:
            raise InputError(f"keypoints must have shape (F, 20 or 40, 2), got {tuple(k.shape)}")
        self.frames = [int(f) for f in self.frames]
        if len(self.frames) != len(k):
            raise InputError(f"{len(k)} keypoint sets but {len(self.frames)} frame indices")
        if any(b <= a for a, b in zip(self.frames, self.frames[1:])) or any(f < 0 for f in self.frames):
            raise InputError(f"frame indices must be non-negative and increasing, got {self.frames}")
        if not np.all(np.isfinite(k)):
            raise InputError("keypoints hold non-finite coordinates")
        bad = {f: p for f, p in self.phases.items() if p not in PHASES or f not in self.frames}
        if bad:
            raise InputError(f"phases must map listed frames to 'ED' or 'ES', got {bad}")
        if self.spacing_mm is not None:
            self.spacing_mm = (float(self.spacing_mm[0]), float(self.spacing_mm[1]))
            if not all(math.isfinite(s) and s > 0 for s in self.spacing_mm):
                raise InputError(f"spacing must be two positive numbers (dy, dx) in mm, got {self.spacing_mm}")
        if self.image_size is not None:
            self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    @property
    def n_keypoints(self) -> int:
        return int(self.keypoints.shape[1])

    def __getitem__(self, frame: int) -> np.ndarray:
        """(K, 2) keypoints of frame ``frame``."""
        try:
            return self.keypoints[self.frames.index(frame)]
        except ValueError:
            raise InputError(f"no keypoints for frame {frame}") from None


def save_keypoints(path: str | os.PathLike, track: KeypointTrack, fmt: str | None = None) -> None:
    """Write ``track`` as JSON or CSV.

    Args:
        path: the file.
        track: the keypoints.
        fmt: "json" or "csv"; by default the suffix of ``path`` decides.

    Raises:
        InputError: neither format.
    """
    p = Path(path)
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    if fmt == "json":
        p.write_text(json.dumps(_to_json(track), indent=1) + "\n")
    elif fmt == "csv":
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            w.writerows(_csv_rows(track))
    else:
        raise InputError(f"keypoint files are .json or .csv, got {p.name}")


def load_keypoints(path: str | os.PathLike) -> KeypointTrack:
    """Read a keypoint file written by :func:`save_keypoints` (JSON or CSV, by suffix).

    Raises:
        InputError: a missing file, another suffix, or content that does not follow the format.
    """
    p = regular_file(path, "keypoint file")
    try:
        if p.suffix.lower() == ".json":
            d = json.loads(p.read_text())
            if not isinstance(d, dict):
                raise ValueError(f"holds a JSON {type(d).__name__}, expected an object with 'format' and 'frames'")
            return _from_json(d)
        if p.suffix.lower() == ".csv":
            with open(p, newline="") as f:
                return _from_csv(list(csv.DictReader(f)))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise InputError(f"{p} is not a valid echokdm keypoint file: {' '.join(str(e).split())[:200]}") from None
    except RecursionError:
        raise InputError(f"{p} is not a valid echokdm keypoint file: nested too deeply") from None
    except OSError as e:
        raise InputError(f"keypoint file {p} cannot be read: {e.strerror or e}") from None
    raise InputError(f"keypoint files end in .json or .csv, got {p.name}")


def _to_json(t: KeypointTrack) -> dict:
    frames = []
    for f, k in zip(t.frames, t.keypoints):
        entry = {"frame": f, "phase": t.phases.get(f), "endo": k[:20].tolist()}
        if t.n_keypoints == 40:
            entry["epi"] = k[20:].tolist()
        frames.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "n_keypoints": t.n_keypoints,
        "image_size": list(t.image_size) if t.image_size else None,
        "spacing_mm": list(t.spacing_mm) if t.spacing_mm else None,
        "frames": frames,
    }


def _from_json(d: dict) -> KeypointTrack:
    if d.get("format") != FORMAT:
        raise ValueError(f"'format' is {d.get('format')!r}, expected {FORMAT!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"version {d.get('version')!r} is not supported (expected {VERSION})")
    n = d["n_keypoints"]
    kps = [e["endo"] + (e["epi"] if n == 40 else []) for e in d["frames"]]
    return KeypointTrack(
        keypoints=np.array(kps, dtype=np.float64).reshape(len(kps), n, 2),
        frames=[e["frame"] for e in d["frames"]],
        spacing_mm=tuple(d["spacing_mm"]) if d.get("spacing_mm") else None,
        image_size=tuple(d["image_size"]) if d.get("image_size") else None,
        phases={e["frame"]: e["phase"] for e in d["frames"] if e.get("phase")},
    )


def _csv_rows(t: KeypointTrack) -> list[list]:
    rows = []
    for f, k in zip(t.frames, t.keypoints):
        for j, (x, y) in enumerate(k):
            mm = [repr(float(x) * t.spacing_mm[1]), repr(float(y) * t.spacing_mm[0])] if t.spacing_mm else ["", ""]
            rows.append(
                [f, t.phases.get(f, ""), "endo" if j < 20 else "epi", j % 20, repr(float(x)), repr(float(y)), *mm]
            )
    return rows


def _from_csv(rows: list[dict]) -> KeypointTrack:
    if not rows:
        raise ValueError("no rows")
    missing = set(CSV_COLUMNS) - set(rows[0])
    if missing:
        raise ValueError(f"missing columns {sorted(missing)}")
    frames = sorted({int(r["frame"]) for r in rows})
    n = 40 if any(r["structure"] == "epi" for r in rows) else 20
    kps = np.full((len(frames), n, 2), np.nan)
    pos = {f: i for i, f in enumerate(frames)}
    ratios_x, ratios_y = [], []
    for r in rows:
        if r["structure"] not in ("endo", "epi"):
            raise ValueError(f"structure must be 'endo' or 'epi', got {r['structure']!r}")
        j = int(r["index"]) + (20 if r["structure"] == "epi" else 0)
        x, y = float(r["x"]), float(r["y"])
        kps[pos[int(r["frame"])], j] = (x, y)
        if r["x_mm"] and x != 0:
            ratios_x.append(float(r["x_mm"]) / x)
        if r["y_mm"] and y != 0:
            ratios_y.append(float(r["y_mm"]) / y)
    if np.isnan(kps).any():
        raise ValueError(f"every frame needs all {n} points")
    spacing = (_round12(np.median(ratios_y)), _round12(np.median(ratios_x))) if ratios_x and ratios_y else None
    phases = {int(r["frame"]): r["phase"] for r in rows if r["phase"]}
    return KeypointTrack(keypoints=kps, frames=frames, spacing_mm=spacing, phases=phases)


def _round12(v: float) -> float:
    return float(f"{float(v):.12g}")
