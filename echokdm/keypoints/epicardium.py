"""Epicardial keypoints for endocardial tracings that have none (EchoNet-Dynamic traces the cavity only).

The 40-keypoint models need the epicardium. For a traced frame it is taken from a segmentation of that frame
(:func:`epicardium_from`: the segmented wall, carried onto the traced endocardium); for a second traced frame
of the same loop it is moved with the endocardium (:func:`move_epicardium`: the wall keeps its area, the
myocardium being nearly incompressible, so it thickens as the cavity shrinks).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from echokdm.errors import InputError


def epicardium_from(endo: np.ndarray, segmented: np.ndarray) -> np.ndarray:
    """40 keypoints: the traced endocardium followed by the segmented frame's wall placed on it.

    Each epicardial keypoint keeps its offset from the endocardial keypoint of the same index in ``segmented``,
    turned by the rotation that best aligns the segmented endocardium with ``endo`` (least squares), so the
    wall keeps its thickness and follows the traced cavity.

    Args:
        endo: (20, 2) traced endocardial keypoints (x, y) in pixels.
        segmented: (40, 2) keypoints of a segmentation of the same frame.

    Returns:
        (40, 2) keypoints.
    """
    endo, seg = _check(endo, 20), _check(segmented, 40)
    a, b = seg[:20] - seg[:20].mean(0), endo - endo.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    rot = u @ np.diag([1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # row vectors: p @ rot
    return np.concatenate([endo, endo + (seg[20:] - seg[:20]) @ rot])


def move_epicardium(source: np.ndarray, target_endo: np.ndarray) -> np.ndarray:
    """40 keypoints of a target frame whose endocardium only is known, from the source frame's 40.

    The epicardium moves by a fraction ``w`` of the endocardial displacement of the same index, ``w`` chosen so
    that the myocardial area (epicardial minus endocardial polygon) is the source's (clipped to [0, 1]: the
    wall neither stays behind nor outruns the cavity).

    Args:
        source: (40, 2) keypoints (x, y) of the source frame.
        target_endo: (20, 2) endocardial keypoints of the target frame.

    Returns:
        (40, 2) keypoints.
    """
    src, tgt = _check(source, 40), _check(target_endo, 20)
    shift = tgt - src[:20]
    wall = myocardial_area(src)

    def gap(w: float) -> float:
        return myocardial_area(np.concatenate([tgt, src[20:] + w * shift])) - wall

    lo, hi = gap(0.0), gap(1.0)
    w = brentq(gap, 0.0, 1.0, xtol=1e-6) if lo * hi < 0 else (0.0 if abs(lo) <= abs(hi) else 1.0)
    return np.concatenate([tgt, src[20:] + w * shift])


def myocardial_area(kps: np.ndarray) -> float:
    """Area (pixels^2) between the epicardial and the endocardial polygon of (40, 2) keypoints."""
    k = _check(kps, 40)
    return _area(k[20:]) - _area(k[:20])


def _area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _check(kps: np.ndarray, n: int) -> np.ndarray:
    k = np.asarray(kps, dtype=np.float64)
    if k.shape != (n, 2) or not np.all(np.isfinite(k)):
        raise InputError(f"expected ({n}, 2) finite keypoints, got shape {k.shape}")
    return k
