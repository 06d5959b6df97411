"""Ordered, corresponding contour keypoints from CAMUS label maps.

The rule (also in ``data_specs/keypoints.md``):

1. Cleaning: of several LA (label 3) components the largest is kept; of several LV cavity (label 1)
   components, the largest one bordering the LA (the largest overall when none borders it), with its
   holes filled; myocardium (label 2) only where it borders that cavity.
2. The cavity border is traced with sub-pixel accuracy (``skimage.measure.find_contours`` on the lightly
   smoothed mask).
3. The two mitral-annulus hinge points are the ends of the stretch of border that runs along the LA,
   where it turns to run along the myocardium or anything else. Without an LA label they are the ends of
   the basal gap of the myocardial "U" (the longest stretch not along the myocardium); with neither label,
   the ends of the flat basal end of the cavity (the end of its long axis pointing down the image, away
   from the transducer).
4. The apex is the border point farthest from the annulus midpoint (refined to sub-pixel by a parabola).
5. ``n // 2`` points are placed on each side at equal arc-length steps: with ``u_k = 2k / (n - 1)``,
   point ``k`` sits at arc-length fraction ``u_k`` of the first side (hinge to apex) when ``u_k <= 1``
   and at fraction ``u_k - 1`` of the second side (apex to hinge) otherwise. Point 0 and point
   ``n - 1`` are the hinges; the apex lies between points ``n/2 - 1`` and ``n/2``.
6. The first hinge is the septal one. In the standard apical four-chamber display (transducer and apex
   at the top, LV on the right of the screen) the septum is on the image-left side of the LV, so
   ``septum_side="left"``; the side is judged relative to the long axis, so rotated images keep their
   order. Use ``"right"`` for images shown mirrored. In a two-chamber view the first point is then the
   image-left (inferior) wall.
7. For 40 keypoints, 20 more follow on the epicardium: the border of cavity + myocardium cut by the
   extended annulus line (through the two endocardial hinges), without its parts along the LA and along
   the exposed cavity base; hinges at the cut, apex and spacing by the same rule, first point on the
   septal side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import measure

from echokdm.errors import InputError
from echokdm.masks import fill_holes

LV_CAVITY = 1
LV_MYOCARDIUM = 2
LEFT_ATRIUM = 3

#: a contour point "touches" a structure when its centre-to-pixel-centre distance is below this (pixels)
TOUCH_PX = 1.5
_PAD = 3


def extract_keypoints(
    label_map: np.ndarray,
    n: int = 20,
    *,
    septum_side: Literal["left", "right"] = "left",
    smooth_px: float = 1.5,
) -> np.ndarray:
    """Ordered LV contour keypoints of one CAMUS label map.

    Args:
        label_map: (H, W) integer labels (1 LV cavity, 2 LV myocardium, 3 LA; others are background).
        n: 20 (endocardium) or 40 (20 endocardium followed by 20 epicardium).
        septum_side: image side of the septum in the apex-up display ("left" for standard A4C).
        smooth_px: Gaussian sigma (pixels) applied to each mask before tracing its border; 0 traces the
            raw pixel mask.

    Returns:
        (n, 2) float64 keypoints (x, y) in pixels, ordered septal hinge -> apex -> lateral hinge
        (endocardium, then epicardium for n=40).

    Raises:
        InputError: not a 2-D label map, no LV cavity, a cavity too small to trace, or n=40 without myocardium.
    """
    if n not in (20, 40):
        raise InputError(f"number of keypoints must be 20 or 40, got {n}")
    if septum_side not in ("left", "right"):
        raise InputError(f"septum_side must be 'left' or 'right', got {septum_side!r}")
    labels = _as_label_map(label_map)
    anatomy = _Anatomy.from_labels(labels)
    endo = _trace_endocardium(anatomy, smooth_px)
    first = 0 if (_side(endo.hinges[0], endo) > 0) == (septum_side == "left") else 1
    endo_pts = endo.sample(20, first_hinge=first)
    if n == 20:
        return endo_pts
    epi = _trace_epicardium(anatomy, endo, smooth_px)
    d0 = np.linalg.norm(epi.hinges - endo_pts[0], axis=1)
    epi_pts = epi.sample(20, first_hinge=int(np.argmin(d0)))
    return np.concatenate([endo_pts, epi_pts])


def _as_label_map(label_map: np.ndarray) -> np.ndarray:
    a = np.asarray(label_map)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"a label map must be 2-D (H, W), got shape {tuple(a.shape)}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            raise InputError(f"a label map must hold integer labels, got non-integer values of dtype {a.dtype}")
    return a.astype(np.int64)


@dataclass
class _Anatomy:
    """Cleaned masks, padded by ``_PAD`` pixels so borders touching the image edge still close."""

    cavity: np.ndarray
    myocardium: np.ndarray
    atrium: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> _Anatomy:
        padded = np.pad(labels, _PAD)
        cav_all = padded == LV_CAVITY
        if not cav_all.any():
            raise InputError("the segmentation has no LV cavity (label 1)")
        atrium = _largest(padded == LEFT_ATRIUM)
        cavity = fill_holes(_keep_component(cav_all, atrium))
        if cavity.sum() < 9:
            raise InputError(f"the LV cavity has only {int(cavity.sum())} pixels; it is too small to trace")
        myo_all = padded == LV_MYOCARDIUM
        myocardium = _touching(myo_all, cavity) & ~cavity
        return cls(cavity=cavity, myocardium=myocardium, atrium=atrium)


def _keep_component(mask: np.ndarray, prefer: np.ndarray) -> np.ndarray:
    """The largest component of ``mask`` that borders ``prefer`` if it is at least half the largest, else the
    largest."""
    lab, k = ndimage.label(mask, structure=np.ones((3, 3)))
    if k == 0:
        return mask
    sizes = np.bincount(lab.ravel(), minlength=k + 1)[1:]
    best = int(np.argmax(sizes)) + 1
    if prefer.any():
        near = [i for i in np.unique(lab[ndimage.binary_dilation(prefer, iterations=2)]) if i > 0]
        near = [i for i in near if sizes[i - 1] >= 0.5 * sizes.max()]
        if near:
            best = max(near, key=lambda i: sizes[i - 1])
    return lab == best


def _largest(mask: np.ndarray) -> np.ndarray:
    return _keep_component(mask, np.zeros_like(mask))


def _touching(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Components of ``mask`` that border ``other``."""
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    ids = np.unique(lab[ndimage.binary_dilation(other, iterations=2)])
    return np.isin(lab, ids[ids > 0])


@dataclass
class _Border:
    """A traced open border from one hinge to the other, with its apex.

    ``path`` is (M, 2) (x, y) in padded pixels from ``hinges[0]`` to ``hinges[1]``; ``apex_index`` is the
    index of the apex vertex in ``path``.
    """

    path: np.ndarray
    apex_index: int

    @property
    def hinges(self) -> np.ndarray:
        return self.path[[0, -1]]

    @property
    def apex(self) -> np.ndarray:
        return self.path[self.apex_index]

    @property
    def midpoint(self) -> np.ndarray:
        return self.hinges.mean(axis=0)

    @classmethod
    def with_apex(cls, path: np.ndarray) -> _Border:
        """A border along ``path`` with the apex inserted: the point farthest from the annulus midpoint,
        refined to sub-pixel by a parabola fitted to the distance over arc length."""
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        r = np.linalg.norm(path - path[[0, -1]].mean(axis=0), axis=1)
        k = int(np.argmax(r))
        half = max(2.0, 0.08 * s[-1])
        win = np.abs(s - s[k]) <= half
        s_apex = s[k]
        if win.sum() >= 5:
            a, b, _ = np.polyfit(s[win] - s[k], r[win], 2)
            if a < 0 and abs(b / (2 * a)) <= half:
                s_apex = s[k] - b / (2 * a)
        s_apex = float(np.clip(s_apex, s[1], s[-2]))
        apex = np.stack([np.interp(s_apex, s, path[:, 0]), np.interp(s_apex, s, path[:, 1])])
        j = int(np.searchsorted(s, s_apex))
        return cls(path=np.concatenate([path[:j], apex[None], path[j:]]), apex_index=j)

    def sample(self, n: int, first_hinge: int) -> np.ndarray:
        """``n`` points hinge -> apex -> hinge, equally spaced by arc length on each side, in image pixels."""
        sides = [self.path[: self.apex_index + 1], self.path[self.apex_index :]]
        if first_hinge == 1:
            sides = [s[::-1] for s in sides[::-1]]
        u = 2.0 * np.arange(n) / (n - 1)
        first = _at_fraction(sides[0], u[u <= 1.0])
        second = _at_fraction(sides[1], u[u > 1.0] - 1.0)
        return np.concatenate([first, second]) - _PAD


def _trace_endocardium(an: _Anatomy, smooth_px: float) -> _Border:
    contour = _closed_contour(an.cavity, smooth_px)
    outside = ~(an.cavity | an.myocardium | an.atrium)
    la_touch = _distance_to(an.atrium, contour) < TOUCH_PX
    rules = []
    if an.atrium.any():  # positive where the border runs along anything but the LA
        rules.append(_presence(an.myocardium | outside, contour) - _presence(an.atrium, contour))
    if an.myocardium.any():  # positive where the border runs along the myocardium rather than anything else
        rules.append(_presence(an.myocardium, contour) - _presence(outside, contour))
    rules.append(_basal_end_rule(an.cavity, contour))
    for wall in rules:
        border = _border_around_gap(contour, wall, la_touch, corner_px=2.0 * smooth_px)
        if border is not None:
            return border
    raise InputError("cannot find the mitral annulus on the LV cavity border")


def _trace_epicardium(an: _Anatomy, endo: _Border, smooth_px: float) -> _Border:
    if not an.myocardium.any():
        raise InputError("40 keypoints need the LV myocardium (label 2) next to the cavity, but there is none")
    lv = fill_holes(_largest(an.cavity | an.myocardium))
    contour = _closed_contour(lv, smooth_px)
    a, b = endo.hinges
    normal = np.array([a[1] - b[1], b[0] - a[0]])
    normal /= np.linalg.norm(normal)
    if normal @ (endo.apex - endo.midpoint) < 0:
        normal = -normal
    height = (contour - endo.midpoint) @ normal
    d_cav = _distance_to(an.cavity, contour)
    d_la = _distance_to(an.atrium, contour)
    # gap: below the annulus line, along the LA, or along the cavity near the annulus line (a cavity
    # exposed higher up, where the sector edge cuts the wall, stays part of the epicardial border)
    wall = np.minimum(np.minimum(height, d_la - TOUCH_PX), np.maximum(d_cav - TOUCH_PX, height - 2 * TOUCH_PX))
    border = _border_around_gap(contour, wall, d_cav < TOUCH_PX)
    if border is None:
        raise InputError("cannot find the epicardial border: the myocardium does not reach the annulus level")
    return border


def _closed_contour(mask: np.ndarray, smooth_px: float) -> np.ndarray:
    """(M, 2) (x, y) vertices of the outer border of ``mask`` (first vertex not repeated)."""
    field = ndimage.gaussian_filter(mask.astype(np.float64), smooth_px) if smooth_px > 0 else mask.astype(np.float64)
    contours = [c for c in measure.find_contours(field, 0.5) if np.allclose(c[0], c[-1])]
    if not contours:
        raise InputError("the LV border could not be traced")
    c = max(contours, key=_polygon_area)
    return np.ascontiguousarray(c[:-1, ::-1])


def _polygon_area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _distance_to(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each (x, y) point to the nearest pixel centre of ``mask`` (inf if empty)."""
    if not mask.any():
        return np.full(len(pts), np.inf)
    edt = ndimage.distance_transform_edt(~mask)
    return ndimage.map_coordinates(edt, [pts[:, 1], pts[:, 0]], order=1, mode="nearest")


def _presence(mask: np.ndarray, pts: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gaussian-weighted share of ``mask`` pixels around each (x, y) point (smooth, so crossings are sub-pixel)."""
    field = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    return ndimage.map_coordinates(field, [pts[:, 1], pts[:, 0]], order=1, mode="nearest")


def _basal_end_rule(cavity: np.ndarray, contour: np.ndarray) -> np.ndarray:
    """Positive away from the basal end: the contour end of the cavity's long axis that points down the image."""
    ys, xs = np.nonzero(cavity)
    pts = np.stack([xs, ys], 1).astype(np.float64)
    centre = pts.mean(0)
    _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
    axis = vecs[:, -1] if vecs[1, -1] >= 0 else -vecs[:, -1]
    proj = (contour - centre) @ axis
    tol = max(1.0, 0.02 * float(proj.max() - proj.min()))
    return proj.max() - tol - proj


def _border_around_gap(
    contour: np.ndarray, wall: np.ndarray, prefer: np.ndarray, corner_px: float = 0.0
) -> _Border | None:
    """The border from hinge to hinge around the basal gap of a closed contour.

    The gaps are the runs of vertices with ``wall <= 0``; the basal one is the gap running longest along
    ``prefer`` vertices (the longest gap when none does). The hinges sit at the sub-pixel zero crossings
    of ``wall`` at its ends; the border is the rest of the contour (other, smaller gaps included). With
    ``corner_px`` > 0 each hinge is moved to the corner that the smoothing rounded off (see :func:`_corner`).
    """
    gap = wall <= 0
    if gap.all() or not gap.any():
        return None
    m = len(contour)
    seg = np.linalg.norm(np.roll(contour, -1, 0) - contour, axis=1)
    order = np.roll(np.arange(m), -int(np.argmax(~gap)))  # start on a wall vertex: no gap wraps around
    edges = np.diff(np.concatenate([[0], gap[order].astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)

    def score(k: int) -> tuple[float, float]:
        idx = order[starts[k] : ends[k]]
        return float((seg[idx] * prefer[idx]).sum()), float(seg[idx].sum())

    k = max(range(len(starts)), key=score)
    first, last = order[starts[k]], order[ends[k] - 1]
    before, after = order[starts[k] - 1], order[ends[k] % m]
    idx = np.concatenate([order[ends[k] :], order[: starts[k]]])
    h0 = _crossing(contour[last], contour[after], wall[last], wall[after])
    h1 = _crossing(contour[before], contour[first], wall[before], wall[first])
    pts, gap_pts = contour[idx], contour[order[starts[k] : ends[k]]]
    if corner_px > 0:
        h0, k0 = _corner(h0, pts, gap_pts[::-1], corner_px)
        h1, k1 = _corner(h1, pts[::-1], gap_pts, corner_px)
        pts = pts[k0 : len(pts) - k1]
    path = np.concatenate([h0[None], pts, h1[None]])
    if len(path) < 5 or _length(path) < 4.0:
        return None
    return _Border.with_apex(path)


def _corner(hinge: np.ndarray, wall: np.ndarray, gap: np.ndarray, skip: float) -> tuple[np.ndarray, int]:
    """Sharpen a hinge on a smoothed contour: intersect the lines fitted to the wall and to the gap just
    beyond the rounded stretch (``skip`` to ``6 skip`` pixels from the hinge along each, at most a third
    of the gap).

    Args:
        hinge: (2,) the hinge on the smoothed contour.
        wall: (A, 2) wall vertices going away from the hinge.
        gap: (B, 2) gap vertices going away from the hinge.
        skip: length of the rounded stretch (pixels).

    Returns:
        The corner (the hinge unchanged when the two sides are nearly parallel, too short, or the corner
        lies far away) and the number of leading wall vertices it replaces.
    """
    fits = []
    for side, limit in ((wall, np.inf), (gap, _length(np.concatenate([hinge[None], gap])) / 3)):
        d = np.cumsum(np.linalg.norm(np.diff(np.concatenate([hinge[None], side]), axis=0), axis=1))
        sel = side[(d >= skip) & (d <= min(6 * skip, limit))]
        if len(sel) < 3:
            return hinge, 0
        centre = sel.mean(axis=0)
        _, _, vt = np.linalg.svd(sel - centre)
        fits.append((centre, vt[0]))
    (p, u), (q, v) = fits
    det = u[0] * -v[1] + v[0] * u[1]
    if abs(det) < np.sin(np.deg2rad(25)):
        return hinge, 0
    a = ((q - p)[0] * -v[1] + v[0] * (q - p)[1]) / det
    corner = p + a * u
    if np.linalg.norm(corner - hinge) > 2 * skip:
        return hinge, 0
    d_wall = np.cumsum(np.linalg.norm(np.diff(np.concatenate([hinge[None], wall]), axis=0), axis=1))
    return corner, int(np.searchsorted(d_wall, skip))


def _crossing(p: np.ndarray, q: np.ndarray, fp: float, fq: float) -> np.ndarray:
    """The point between ``p`` and ``q`` where a linearly interpolated ``f`` is zero."""
    t = fp / (fp - fq) if fp != fq else 0.5
    return p + float(np.clip(t, 0.0, 1.0)) * (q - p)


def _length(path: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())


def _side(hinge: np.ndarray, border: _Border) -> float:
    """Positive when ``hinge`` is on the image-left of the LV in the apex-up view (relative to the long axis)."""
    u = border.midpoint - border.apex
    d = hinge - border.midpoint
    return float(u[0] * d[1] - u[1] * d[0])


def _at_fraction(path: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Points at the given arc-length fractions (0..1) of a polyline."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    t = np.asarray(fractions) * s[-1]
    return np.stack([np.interp(t, s, path[:, 0]), np.interp(t, s, path[:, 1])], axis=1)
