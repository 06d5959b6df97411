"""Anatomical constraint on a segmented frame: the LV cavity ends at the mitral annulus.

A real LV cavity is closed at its base by the annulus, which joins the basal ends of the septal and lateral
myocardium. Where the network lets the cavity leak past that line into the LA (thin or open leaflets in late
diastole), :func:`clip_at_annulus` gives the pixels beyond it to the LA. The annulus line is found from the
labels alone: the cavity's long axis (its principal direction, oriented towards the apex, where the myocardium's
horseshoe lies) splits the myocardium into its two walls, and each wall's basal end is its pixel farthest from
the apex along that axis. A wall that stops short of the cavity's base (dropout) gives no line.
"""

from __future__ import annotations

import numpy as np

#: CAMUS label values (:data:`echokdm.labels.LABELS`)
LV, MYO, LA = 1, 2, 3

#: cavity pixels count as beyond the annulus when more than this many pixels past its line
ANNULUS_TOLERANCE_PX = 1.0
#: a cut that would remove more of the cavity than this is not an annulus cut (a failed axis): left undone
MAX_CUT_FRACTION = 0.15
#: fewest pixels of cavity and of myocardium for the constraint to apply
MIN_PIXELS = 20
#: each wall must reach this fraction of the cavity's length from its apex (else the wall is broken, e.g. by
#: dropout, and its end is no annulus hinge)
MIN_WALL_REACH = 0.85


def annulus_line(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The annulus of a frame's labels: (septal-or-lateral end, other end, unit normal towards the base).

    Args:
        labels: (H, W) CAMUS labels.

    Returns:
        Two (2,) (y, x) points and a (2,) unit vector, or None when cavity or myocardium is too small or a
        wall stops short of :data:`MIN_WALL_REACH` of the cavity's length.
    """
    cavity = np.argwhere(labels == LV).astype(np.float64)
    myo = np.argwhere(labels == MYO).astype(np.float64)
    if len(cavity) < MIN_PIXELS or len(myo) < MIN_PIXELS:
        return None
    centre = cavity.mean(0)
    axis = np.linalg.eigh(np.cov((cavity - centre).T))[1][:, -1]
    if ((myo - centre) @ axis).mean() < 0:  # the myocardium's horseshoe caps the apex
        axis = -axis
    across = np.array([-axis[1], axis[0]])
    depth = (myo - centre) @ -axis  # distance towards the base
    cavity_depth = (cavity - centre) @ -axis
    reach = cavity_depth.min() + MIN_WALL_REACH * np.ptp(cavity_depth)
    side = (myo - centre) @ across
    ends = []
    for wall in (side < 0, side > 0):
        if not wall.any():
            return None
        end = np.argmax(np.where(wall, depth, -np.inf))
        if depth[end] < reach:
            return None
        ends.append(myo[end])
    p, q = ends
    normal = np.array([-(q - p)[1], (q - p)[0]])
    length = np.linalg.norm(normal)
    if length == 0:
        return None
    normal /= length
    if normal @ -axis < 0:
        normal = -normal
    return p, q, normal


def clip_at_annulus(labels: np.ndarray, tolerance_px: float = ANNULUS_TOLERANCE_PX) -> np.ndarray:
    """Give LV cavity pixels beyond the annulus line to the LA (to the background when no LA is labelled).

    Args:
        labels: (H, W) uint8 CAMUS labels, one component per structure.
        tolerance_px: pixels past the line still left to the cavity.

    Returns:
        (H, W) uint8 labels; the input itself when nothing is cut, the line is not found, or the cut would
        take more than :data:`MAX_CUT_FRACTION` of the cavity.
    """
    line = annulus_line(labels)
    if line is None:
        return labels
    p, _, normal = line
    cavity = np.argwhere(labels == LV)
    beyond = cavity[(cavity - p) @ normal > tolerance_px]
    if len(beyond) == 0 or len(beyond) > MAX_CUT_FRACTION * len(cavity):
        return labels
    out = labels.copy()
    out[beyond[:, 0], beyond[:, 1]] = LA if (labels == LA).any() else 0
    return out
