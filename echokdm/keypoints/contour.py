"""Keypoints back to smooth contours and masks.

The endocardial keypoints (hinge -> apex -> hinge) are joined by an interpolating cubic spline in
chord length and the contour is closed by the straight annulus segment between the hinges. With 40
keypoints the myocardium is the region between the endocardial and the epicardial curves, closed at each
base by the segment from the endocardial to the epicardial hinge.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from skimage.draw import polygon

from echokdm.errors import InputError
from echokdm.keypoints.extract import LV_CAVITY, LV_MYOCARDIUM


def check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Validate one keypoint set.

    Args:
        keypoints: (K, 2) points (x, y), K = 20 or 40.

    Returns:
        The keypoints as a float64 array.

    Raises:
        InputError: wrong shape or non-finite values.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != 2 or k.shape[0] not in (20, 40):
        raise InputError(f"keypoints must have shape (20, 2) or (40, 2), got {tuple(k.shape)}")
    if not np.all(np.isfinite(k)):
        raise InputError("keypoints hold non-finite coordinates")
    return k


def spline_chain(points: np.ndarray, per_interval: int = 32) -> np.ndarray:
    """Dense points along the interpolating cubic spline through ``points`` (open, end to end).

    Args:
        points: (P, 2) ordered points (x, y), P >= 2.
        per_interval: samples per interval between consecutive points.

    Returns:
        ((P - 1) * per_interval + 1, 2) points; the first and last are ``points[0]`` and ``points[-1]``.
    """
    chord = np.linalg.norm(np.diff(points, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(np.maximum(chord, 1e-9))])
    spline = CubicSpline(t, points, axis=0, bc_type="natural")
    tt = np.concatenate(
        [np.linspace(t[i], t[i + 1], per_interval, endpoint=False) for i in range(len(t) - 1)] + [t[-1:]]
    )
    return spline(tt)


def endocardial_contour(keypoints: np.ndarray, per_interval: int = 32) -> np.ndarray:
    """Closed endocardial contour (the last vertex is the lateral hinge; the annulus segment closes it).

    Args:
        keypoints: (K, 2) keypoints, K = 20 or 40 (the first 20 are used).
        per_interval: spline samples between consecutive keypoints.

    Returns:
        (M, 2) polygon vertices (x, y), first vertex not repeated.
    """
    return spline_chain(check_keypoints(keypoints)[:20], per_interval)


def keypoints_to_mask(keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a keypoint set as a CAMUS label map.

    Args:
        keypoints: (20, 2) endocardial or (40, 2) endocardial + epicardial keypoints (x, y) in pixels.
        shape: (H, W) of the output.

    Returns:
        (H, W) uint8: 1 inside the endocardial contour; with 40 keypoints also 2 in the myocardium.

    Raises:
        InputError: keypoints of the wrong shape, or a shape that is not two positive sizes.
    """
    k = check_keypoints(keypoints)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"mask shape must be (H, W) with positive sizes, got {tuple(shape)}")
    out = np.zeros(tuple(int(s) for s in shape), np.uint8)
    if len(k) == 40:
        ring = np.concatenate([spline_chain(k[20:]), spline_chain(k[:20])[::-1]])
        rr, cc = polygon(ring[:, 1], ring[:, 0], out.shape)
        out[rr, cc] = LV_MYOCARDIUM
    endo = spline_chain(k[:20])
    rr, cc = polygon(endo[:, 1], endo[:, 0], out.shape)
    out[rr, cc] = LV_CAVITY
    return out
