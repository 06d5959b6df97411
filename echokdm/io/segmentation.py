"""Read label maps (segmentations) from NIfTI, MHD/MHA/NRRD, PNG (one file or a folder) and DICOM SEG.

Labels are returned as stored: CAMUS values 0 background, 1 LV cavity, 2 LV myocardium, 3 LA (phantom
files also use 4..6). A DICOM SEG becomes a label map with each segment's ``SegmentNumber`` as its value
(so a SEG with segments 1 LV cavity, 2 myocardium, 3 LA gives CAMUS labels); BINARY, FRACTIONAL (> 50 %)
and LABELMAP segmentation types are read.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from echokdm.errors import InputError, UnsupportedError
from echokdm.io.load import check_input_path
from echokdm.io.sequences import (
    FRAME_SUFFIXES,
    VOLUME_SUFFIXES,
    check_nifti,
    frame_files,
    read_sitk_image,
    suffix_of,
)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
_SEGMENT_NUMBER_TAG = 0x0062000B


def read_segmentation(
    path: str | os.PathLike, image_only: bool = True
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Read a segmentation as integer labels.

    Args:
        path: a ``.nii``/``.nii.gz``/``.mhd``/``.mha``/``.nrrd`` file (2D, or 2D + time with time as the
            slowest axis, as CAMUS ``_half_sequence_gt`` files), a ``.png`` file, a folder of PNG frames
            (natural name order), or a DICOM SEG file.
        image_only: return only the labels; otherwise also a meta dict with ``filename_or_obj``,
            ``format``, ``spacing_mm`` ((dy, dx) in mm or None) and ``spacing_source``.

    Returns:
        uint8 labels (H, W) for one frame, (T, H, W) for a sequence (a folder or a SEG of several frames
        is always a sequence), and the meta dict unless ``image_only``.

    Raises:
        InputError: missing or unreadable path, non-integer, negative or > 255 labels, colour images,
            frames of different sizes, a DICOM object that is not a segmentation.
        UnsupportedError: a DICOM SEG whose frames cannot be placed in time.
    """
    p = check_input_path(path)
    if p.is_dir():
        files = [f for f in frame_files(p) if suffix_of(f) == ".png"]
        if not files:
            raise InputError(f"{p}: folder holds no PNG label frames")
        frames = [_read_png(f) for f in files]
        for f, a in zip(files, frames):
            if a.shape != frames[0].shape:
                raise InputError(
                    f"{f}: label frame size {a.shape[::-1]} differs from the first frame's {frames[0].shape[::-1]}"
                )
        labels, meta = np.stack(frames), {"format": "png", "spacing_mm": None, "spacing_source": "unknown"}
    elif suffix_of(p) in VOLUME_SUFFIXES:
        labels, meta = _read_volume(p)
    elif suffix_of(p) in FRAME_SUFFIXES:
        labels, meta = _read_png(p), {"format": "png", "spacing_mm": None, "spacing_source": "unknown"}
    else:
        labels, meta = _read_dicom_seg(p)
    meta["filename_or_obj"] = str(p)
    return labels if image_only else (labels, meta)


def _as_labels(arr: np.ndarray, source: Path) -> np.ndarray:
    if arr.size == 0:
        raise InputError(f"{source}: segmentation is empty (shape {tuple(arr.shape)})")
    if not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{source}: segmentation holds non-integer values; expected integer labels 0..255")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 255:
        raise InputError(f"{source}: labels range {lo:g}..{hi:g}; expected integer labels 0..255")
    return arr.astype(np.uint8)


def _read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # each imageio plugin (Pillow, SimpleITK, ...) raises its own kinds
        raise InputError(f"{path}: image cannot be read: {' '.join(str(e).split()) or type(e).__name__}") from None
    if img.ndim == 3:
        colour = img[..., :3] if img.shape[-1] >= 3 else img[..., :1]
        if not np.all(colour == colour[..., :1]):
            raise InputError(f"{path}: is a colour image; expected a grey PNG whose values are the labels")
        img = colour[..., 0]
    return _as_labels(img, path)


def _read_volume(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import SimpleITK as sitk

    if suffix_of(path) in (".nii", ".nii.gz"):
        check_nifti(path)
    image = read_sitk_image(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        n = image.GetNumberOfComponentsPerPixel()
        raise InputError(f"{path}: has {n} components per pixel; expected one label per pixel")
    arr = sitk.GetArrayFromImage(image)  # (T, H, W) for 2D + time, (H, W) for 2D
    if arr.ndim > 3:
        arr = arr.reshape([s for s in arr.shape if s != 1] or [1])
    if arr.ndim not in (2, 3):
        raise InputError(f"{path}: segmentation has shape {arr.shape}; expected (H, W) or (T, H, W)")
    spacing = image.GetSpacing()
    meta = {
        "format": suffix_of(path).lstrip(".").replace(".gz", ""),
        "spacing_mm": [float(spacing[1]), float(spacing[0])],
        "spacing_source": "image header",
    }
    return _as_labels(arr, path), meta


def _read_dicom_seg(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"{path}: is not a segmentation file ({' '.join(str(e).split())}); expected NIfTI, MHD, PNG or DICOM SEG"
        ) from None
    sop = str(header.get("SOPClassUID", ""))
    if header.get("Modality") != "SEG" and sop not in (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE):
        raise InputError(f"{path}: is a DICOM {header.get('Modality') or '?'} object, not a segmentation (DICOM SEG)")
    try:
        with warnings.catch_warnings():  # pydicom warns about a cut file; the error below says what is wrong
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
    except Exception as e:  # pydicom raises many kinds for undecodable pixel data
        raise InputError(f"{path}: segmentation pixel data cannot be decoded: {' '.join(str(e).split())}") from None
    n = int(ds.get("NumberOfFrames", 1))
    pixels = pixels.reshape(n, int(ds.Rows), int(ds.Columns))
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    times = _frame_times(ds, per_frame, n, path)
    order = sorted(set(times))
    labels = np.zeros((len(order), int(ds.Rows), int(ds.Columns)), np.uint8)
    if seg_type == "LABELMAP":
        for i in range(n):
            labels[order.index(times[i])] = _as_labels(pixels[i], path)
    else:
        segments = [_segment_number(per_frame, i, path) for i in range(n)]
        threshold = 0.5 * float(ds.get("MaximumFractionalValue", 1)) if seg_type == "FRACTIONAL" else 0.5
        for i in np.argsort(segments, kind="stable"):
            if not 0 < segments[i] <= 255:
                raise InputError(f"{path}: segment number {segments[i]} cannot be a label 1..255")
            labels[order.index(times[i])][pixels[i] > threshold] = segments[i]
    meta = {"format": "dicom-seg", "spacing_mm": _seg_spacing(ds), "spacing_source": "dicom"}
    meta["spacing_source"] = "dicom" if meta["spacing_mm"] else "unknown"
    return (labels[0] if len(order) == 1 else labels), meta


def _frame_times(ds: Any, per_frame: list, n: int, path: Path) -> list:
    """Time key of each SEG frame: its referenced source frame, else its dimension index values other
    than the segment number, else its rank among the frames of its segment."""
    refs = [_referenced_frame(f) for f in per_frame]
    if n and len(refs) == n and all(r is not None for r in refs):
        return refs
    pointers = [
        int(d.DimensionIndexPointer) for d in ds.get("DimensionIndexSequence", []) if "DimensionIndexPointer" in d
    ]
    keep = [k for k, tag in enumerate(pointers) if tag != _SEGMENT_NUMBER_TAG]
    values = [_dimension_values(f) for f in per_frame]
    if keep and len(values) == n and all(v is not None and len(v) == len(pointers) for v in values):
        return [tuple(v[k] for k in keep) for v in values]
    if str(ds.get("SegmentationType", "")).upper() == "LABELMAP":
        return list(range(n))
    seen: dict[int, int] = {}
    out = []
    for i in range(n):
        s = _segment_number(per_frame, i, path)
        out.append(seen.get(s, 0))
        seen[s] = seen.get(s, 0) + 1
    return out


def _ints(value: Any) -> list[int]:
    from pydicom.multival import MultiValue

    return [int(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [int(value)]


def _referenced_frame(item: Any) -> int | None:
    try:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0].get("ReferencedFrameNumber")
    except (AttributeError, IndexError):
        return None
    return None if ref is None else _ints(ref)[0]


def _dimension_values(item: Any) -> list[int] | None:
    try:
        return _ints(item.FrameContentSequence[0].DimensionIndexValues)
    except (AttributeError, IndexError):
        return None


def _segment_number(per_frame: list, i: int, path: Path) -> int:
    try:
        return int(per_frame[i].SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    except (AttributeError, IndexError):
        raise UnsupportedError(f"{path}: SEG frame {i + 1} does not name its segment") from None


def _seg_spacing(ds: Any) -> list[float] | None:
    try:
        sp = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    except (AttributeError, IndexError):
        return None
    return [float(sp[0]), float(sp[1])]
