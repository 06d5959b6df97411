"""Deterministic NIfTI writers: the same array, spacing and header always give the same bytes.

Both follow the CAMUS ``_sequence_gt`` layout: x (columns) fastest, rows, then frames; spacing (dx, dy, 1) mm.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence

import numpy as np


def write_label_sequence(
    path: str | os.PathLike, labels: np.ndarray, spacing_mm: Sequence[float] | None = None
) -> None:
    """Write (T, H, W) labels as gzipped NIfTI of shape (W, H, T).

    Args:
        path: target file (written as .nii.gz whatever its name).
        labels: (T, H, W) uint8.
        spacing_mm: (dy, dx) or None (1 mm).
    """
    import nibabel as nib

    data = np.ascontiguousarray(np.asarray(labels, dtype=np.uint8).transpose(2, 1, 0))
    _write(path, nib.Nifti1Image(data, _affine(spacing_mm)))


def write_flow_sequence(path: str | os.PathLike, flows: np.ndarray, spacing_mm: Sequence[float] | None = None) -> None:
    """Write (N, 2, H, W) flows as gzipped NIfTI of shape (W, H, N, 1, 2), intent VECTOR.

    The vector holds the flow's channels as they are: (dy, dx) in source pixels, pull convention.

    Args:
        path: target file (written as .nii.gz whatever its name).
        flows: (N, 2, H, W) float.
        spacing_mm: (dy, dx) or None (1 mm).
    """
    import nibabel as nib

    data = np.ascontiguousarray(np.asarray(flows, dtype=np.float32).transpose(3, 2, 0, 1)[:, :, :, None, :])
    image = nib.Nifti1Image(data, _affine(spacing_mm))
    image.header.set_intent("vector", (), name="flow dy,dx px")
    image.header["descrip"] = b"echokdm pull flow source->frame, (dy, dx) in pixels"
    _write(path, image)


def _affine(spacing_mm: Sequence[float] | None) -> np.ndarray:
    dy, dx = spacing_mm if spacing_mm else (1.0, 1.0)
    return np.diag([float(dx), float(dy), 1.0, 1.0])


def _write(path: str | os.PathLike, image) -> None:
    image.header.set_xyzt_units("mm")
    with open(path, "wb") as f:
        f.write(gzip.compress(image.to_bytes(), compresslevel=6, mtime=0))  # no time stamp: same data, same bytes
