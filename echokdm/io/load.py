"""One entry point for cine loops of any supported kind: DICOM, NIfTI/MHD, AVI/MP4/GIF, PNG/JPEG frames.

:func:`read_cine` gives 8-bit frames (memory stays at one byte per pixel until a caller converts);
:func:`load_cine` gives the (1, T, H, W) float32 ``MetaTensor`` in [0, 1] that the transforms use, and
:func:`load_cine_file` the same with the DICOM header and the file's sha256 from the same read. The loop's affine
holds the spacing (MONAI convention), so spatial transforms keep it right; :func:`loop_spacing` reads it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from echokdm.errors import InputError
from echokdm.io.calibration import calibrate
from echokdm.io.dicom import MAX_SIDE, decode_dicom, read_dicom_header
from echokdm.io.sector import active_pixels, imaging_region, mask_box
from echokdm.io.sequences import (
    FRAME_SUFFIXES,
    GIF_SUFFIXES,
    VIDEO_SUFFIXES,
    VOLUME_SUFFIXES,
    frame_files,
    read_frames,
    read_gif,
    read_video,
    read_volume_sequence,
    suffix_of,
)

if TYPE_CHECKING:  # torch and MONAI load in about 2 s: only loaders that return tensors import them
    import torch
    from monai.data import MetaTensor
    from pydicom.dataset import Dataset


def read_cine(path: str | os.PathLike, blank_outside_sector: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a cine loop as 8-bit grey frames with its metadata, sector mask and calibrated spacing.

    Args:
        path: a DICOM file, NIfTI/MHD image sequence, AVI/MP4/GIF video, PNG/JPEG image or folder of frames.
        blank_outside_sector: set pixels outside the sector (text, ECG, UI) to 0.

    Returns:
        frames: (T, H, W) uint8.
        meta: ``filename_or_obj``, ``format``, ``n_frames``, ``frame_time_ms``, ``frame_time_source``,
            ``frame_rate_hz``, ``spacing_mm`` (dy, dx) or None, ``spacing_source``, ``spacing_warning``,
            ``region_box``, ``sector_mask`` ((H, W) bool), ``sector_box`` (x0, y0, x1, y1), ``original_shape``,
            and for DICOM the equipment, transfer syntax, photometric interpretation and study/series UIDs.

    Raises:
        InputError: missing path, folder without frames, unreadable or implausible input.
        UnsupportedError: an encoding that cannot be decoded here.
    """
    frames, meta, _ = _read_cine(check_input_path(path), blank_outside_sector)
    return frames, meta


def _read_cine(
    p: Path, blank_outside_sector: bool, stream: BinaryIO | None = None
) -> tuple[np.ndarray, dict[str, Any], Dataset | None]:
    """:func:`read_cine` of a checked path, with the DICOM header (None for other formats); a DICOM file is read
    from ``stream`` when given."""
    regions, header = [], None
    if p.is_dir():
        files = frame_files(p)
        if not files:
            raise InputError(
                f"{p}: is a folder without PNG/JPEG frames; expected a DICOM, NIfTI/MHD, AVI/MP4 or GIF file, "
                "or a folder of PNG/JPEG frames"
            )
        frames, meta = read_frames(files, p)
    elif suffix_of(p) in VOLUME_SUFFIXES:
        frames, meta = read_volume_sequence(p)
    elif suffix_of(p) in VIDEO_SUFFIXES:
        frames, meta = read_video(p)
    elif suffix_of(p) in GIF_SUFFIXES:
        frames, meta = read_gif(p)
    elif suffix_of(p) in FRAME_SUFFIXES:
        frames, meta = read_frames([p], p)
    else:
        frames, meta, regions, header = decode_dicom(p, stream)
    t, h, w = frames.shape
    if t == 0 or not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise InputError(f"{p}: absurd loop shape {t} frames of {w}x{h}; expected frames of 1..{MAX_SIDE} per side")

    active = active_pixels(frames)
    calibration = calibrate(regions, (h, w), mask_box(imaging_region(active))) if regions else None
    box = None
    meta["spacing_warning"] = None
    if calibration is not None:
        sp = calibration.spacing_mm
        meta["spacing_mm"] = [sp[0], sp[1]] if sp is not None else None
        meta["spacing_source"] = calibration.source
        meta["spacing_warning"] = calibration.warning
        box = calibration.box
    meta.update(physical(meta))
    sector = imaging_region(active, box)
    if blank_outside_sector:
        np.multiply(frames, sector, out=frames)
    frame_time = meta.get("frame_time_ms")
    meta.update(
        filename_or_obj=str(p),
        n_frames=t,
        frame_rate_hz=1000.0 / frame_time if frame_time else None,
        region_box=list(box) if box is not None else None,
        sector_mask=sector,
        sector_box=list(mask_box(sector) or (0, 0, w - 1, h - 1)),
        blanked_outside_sector=blank_outside_sector,
    )
    meta.setdefault("heart_rate_bpm", None)
    return frames, meta, header


def in_range(value: Any, limits: tuple[float, float]) -> float | None:
    """``value`` as a float when it is finite and within ``limits``, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if np.isfinite(v) and limits[0] <= v <= limits[1] else None


def physical(meta: dict[str, Any]) -> dict[str, Any]:
    """Frame time, spacing and heart rate of ``meta`` checked against their physical ranges
    (:data:`~echokdm.defaults.FRAME_TIME_MS_RANGE`, ``SPACING_MM_RANGE``, ``HEART_RATE_BPM_RANGE``): a value
    outside (or not finite) becomes unknown, as if the header lacked it; the reason goes to ``*_warning``."""
    from echokdm.defaults import FRAME_TIME_MS_RANGE, HEART_RATE_BPM_RANGE, SPACING_MM_RANGE

    out: dict[str, Any] = {}
    ft, vector = meta.get("frame_time_ms"), meta.get("frame_time_vector_ms")
    vector_ok = vector is None or all(np.isfinite(float(v)) and float(v) >= 0 for v in vector)
    if ft is not None and (in_range(ft, FRAME_TIME_MS_RANGE) is None or not vector_ok):
        lo, hi = FRAME_TIME_MS_RANGE
        out.update(frame_time_ms=None, frame_time_source="unknown", frame_time_vector_ms=None,
                   frame_time_warning=f"{meta.get('frame_time_source')} gives a frame time outside {lo:g}-{hi:g} ms")
    sp = meta.get("spacing_mm")
    if sp is not None and any(in_range(v, SPACING_MM_RANGE) is None for v in sp):
        lo, hi = SPACING_MM_RANGE
        out.update(spacing_mm=None, spacing_warning=f"{meta.get('spacing_source')} gives a pixel spacing outside "
                   f"{lo:g}-{hi:g} mm", spacing_source="unknown")
    if meta.get("heart_rate_bpm") is not None:
        out["heart_rate_bpm"] = in_range(meta["heart_rate_bpm"], HEART_RATE_BPM_RANGE)
    return out


def check_input_path(path: str | os.PathLike) -> Path:
    """Refuse an input path that cannot be read as a file or folder, before any reader opens it.

    Args:
        path: the input.

    Returns:
        The path.

    Raises:
        InputError: missing path, broken symbolic link or link loop, a pipe, socket or device (reading one could
            wait forever), an unreadable or empty file.
    """
    p = Path(path)
    if not p.exists():
        if p.is_symlink():  # a link to nothing, or a loop of links
            try:
                os.stat(p)
            except OSError as e:
                raise InputError(
                    f"{p}: symbolic link cannot be followed: {e.strerror} (it points to {os.readlink(p)})"
                ) from None
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return p
    if not p.is_file():
        raise InputError(f"{p}: is not a regular file (a pipe, socket or device); expected a file or folder")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: file cannot be read (permission denied)")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: is an empty file (0 bytes)")
    return p


def load_cine(path: str | os.PathLike, blank_outside_sector: bool = True) -> MetaTensor:
    """Load a cine loop as a (1, T, H, W) float32 ``MetaTensor`` in [0, 1].

    Args:
        path: see :func:`read_cine`.
        blank_outside_sector: set pixels outside the sector to 0.

    Returns:
        The loop; ``.meta`` holds the keys listed in :func:`read_cine` (never patient-identifying fields) and the
        affine diag(1, dy, dx, 1) the spacing (identity when unknown; :func:`loop_spacing` reads it).

    Raises:
        InputError, UnsupportedError: as :func:`read_cine`.
    """
    return _as_loop(*read_cine(path, blank_outside_sector))


@dataclass
class CineFile:
    """A loop and what else its read gives.

    Attributes:
        loop: (1, T, H, W) float32 ``MetaTensor`` in [0, 1], as :func:`load_cine` makes it.
        header: the DICOM header without pixel data (:func:`~echokdm.io.read_dicom_header`), None for other formats.
        sha256: hex sha256 of the file, None for a folder of frames.
    """

    loop: MetaTensor
    header: Dataset | None
    sha256: str | None

    @classmethod
    def of_loop(cls, loop: MetaTensor) -> CineFile:
        """The header and hash of a loop loaded earlier, from one open of the file it names (``filename_or_obj``).

        Raises:
            InputError: the file's DICOM header cannot be read.
        """
        path = Path(str(loop.meta.get("filename_or_obj", "")))
        if not path.is_file():
            return cls(loop, None, None)
        with open(path, "rb") as f:
            sha256 = _sha256(f)
            header = read_dicom_header(path, f) if loop.meta.get("format") == "dicom" else None
        return cls(loop, header, sha256)


def load_cine_file(path: str | os.PathLike, blank_outside_sector: bool = True) -> CineFile:
    """:func:`load_cine` with the DICOM header and the file's sha256, all from one open of the file (a DICOM file
    is hashed and decoded from the same handle; other formats are decoded by their libraries from the path).
    Patient and study attributes whose value does not fit their VR are dropped from the header here, before any
    work, so that no writer (prediction.dcm, SR, SEG) fails on them later.

    Args:
        path: see :func:`read_cine`.
        blank_outside_sector: set pixels outside the sector to 0.

    Raises:
        InputError, UnsupportedError: as :func:`read_cine`.
    """
    p = check_input_path(path)
    if p.is_dir():
        return CineFile(load_cine(p, blank_outside_sector), None, None)
    with open(p, "rb") as f:
        sha256 = _sha256(f)
        frames, meta, header = _read_cine(p, blank_outside_sector, f)
    if header is not None:
        from echokdm.io.write import drop_invalid

        drop_invalid(header)
    return CineFile(_as_loop(frames, meta), header, sha256)


def _as_loop(frames: np.ndarray, meta: dict[str, Any]) -> MetaTensor:
    """(T, H, W) uint8 frames -> (1, T, H, W) float32 ``MetaTensor`` in [0, 1]; the affine is diag(1, dy, dx, 1)
    (identity when the spacing is unknown)."""
    import torch
    from monai.data import MetaTensor

    out = torch.empty((1, *frames.shape), dtype=torch.float32)
    out[0].copy_(torch.from_numpy(frames))
    out.div_(255.0)
    sp = meta.get("spacing_mm")
    affine = torch.diag(torch.tensor([1.0, *(sp or (1.0, 1.0)), 1.0], dtype=torch.float64))
    return MetaTensor(out, affine=affine, meta=meta)


def loop_spacing(loop: MetaTensor) -> tuple[float, float] | None:
    """The (dy, dx) pixel spacing in mm of a loop from :func:`load_cine`, read from its affine, so it stays right
    after MONAI spatial transforms (``Resize``, ``Spacing``, ``Zoom``...) that leave ``meta["spacing_mm"]`` (the
    spacing as read from the file) behind.

    Args:
        loop: (1, T, H, W) ``MetaTensor`` whose affine maps (frame, row, column) to (frame, y mm, x mm).

    Returns:
        (dy, dx) in mm, or None when the file gave no spacing (``meta["spacing_mm"]`` is None).
    """
    if not loop.meta.get("spacing_mm"):
        return None
    norms = loop.affine[:3, :3].double().square().sum(dim=0).sqrt()  # column lengths: spacing along each axis
    return float(norms[1]), float(norms[2])


def _sha256(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def require_loop(img: torch.Tensor | np.ndarray, min_frames: int = 2) -> None:
    """Refuse a single image where a command needs a cine loop.

    Args:
        img: a loop (1, T, H, W), e.g. from :func:`load_cine` (its ``filename_or_obj`` names it in the error).
        min_frames: frames needed.

    Raises:
        InputError: fewer than ``min_frames`` frames.
    """
    frames = int(img.shape[1]) if img.ndim == 4 else 1
    if frames < min_frames:
        name = getattr(img, "meta", {}).get("filename_or_obj", "input")
        raise InputError(f"{name}: has {frames} frame(s); this needs a cine loop of at least {min_frames} frames")
