"""Analytic apical-four-chamber-like label maps for the keypoint and metric tests.

The LV cavity is an ellipse (semi-axes ``a`` along the long axis, ``b`` across) cut by the annulus line
at ``offset`` below its centre; the myocardium is a ring of width ``wall`` around it, open at the base
and reaching ``drop`` pixels below the annulus; the left atrium is a half-ellipse below the annulus, as wide as the
cavity's base.
Shape coordinates: ``u`` along the long axis from the annulus midpoint towards the apex, ``v`` across,
positive towards the image right in the upright pose. Placement on the image is a similarity: the annulus
midpoint goes to ``base`` (x, y), the long axis points up the image rotated by ``angle_deg``
(counter-clockwise on screen), lengths are multiplied by ``scale``.
"""

from __future__ import annotations

import numpy as np


def to_image(uv: np.ndarray, base=(64.0, 100.0), angle_deg: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """(…, 2) shape coordinates (u, v) -> (…, 2) image points (x, y)."""
    t = np.deg2rad(angle_deg)
    up = np.array([-np.sin(t), -np.cos(t)])  # long axis direction on screen
    right = np.array([np.cos(t), -np.sin(t)])
    uv = np.asarray(uv, dtype=np.float64)
    return np.asarray(base) + scale * (uv[..., :1] * up + uv[..., 1:] * right)


def to_shape(xy: np.ndarray, base=(64.0, 100.0), angle_deg: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Inverse of :func:`to_image`."""
    t = np.deg2rad(angle_deg)
    up = np.array([-np.sin(t), -np.cos(t)])
    right = np.array([np.cos(t), -np.sin(t)])
    d = (np.asarray(xy, dtype=np.float64) - np.asarray(base)) / scale
    return np.stack([d @ up, d @ right], axis=-1)


def a4c_labels(
    shape=(128, 128),
    *,
    a: float = 40.0,
    b: float = 20.0,
    offset: float = 10.0,
    wall: float = 6.0,
    drop: float = 2.0,
    la: bool = True,
    myo: bool = True,
    base=(64.0, 100.0),
    angle_deg: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    """(H, W) uint8 CAMUS labels of the analytic shape, sampled at pixel centres."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    uv = to_shape(np.stack([xx, yy], -1), base, angle_deg, scale)
    u, v = uv[..., 0], uv[..., 1]
    inner = ((u - offset) / a) ** 2 + (v / b) ** 2 <= 1
    outer = ((u - offset) / (a + wall)) ** 2 + (v / (b + wall)) ** 2 <= 1
    base_half = b * np.sqrt(1 - (offset / a) ** 2)
    atrium = (u < 0) & ((u / (1.5 * base_half)) ** 2 + (v / base_half) ** 2 <= 1)
    out = np.zeros(shape, np.uint8)
    if myo:
        out[outer & ~inner & (u >= -drop)] = 2
    if la:
        out[atrium] = 3
    out[inner & (u >= 0)] = 1
    return out


def cavity_volume(a: float, b: float, offset: float, c: float | None = None) -> float:
    """Volume of the cavity rotated about its long axis (semi-axes b and c across; c = b by default)."""
    c = b if c is None else c
    # integral over z from -offset to a of pi b c (1 - z^2/a^2)
    lo, hi = -offset, a
    return float(np.pi * b * c * ((hi - lo) - (hi**3 - lo**3) / (3 * a**2)))


def cavity_area(a: float, b: float, offset: float) -> float:
    """Area of the truncated ellipse (the cavity cross-section)."""
    z0 = -offset / a  # normalised cut
    # area of the part of the unit disc with x >= z0, scaled by a*b
    seg = np.arccos(z0) - z0 * np.sqrt(1 - z0**2)
    return float(a * b * seg)


def cavity_long_axis(a: float, offset: float) -> float:
    """Apex to annulus midpoint."""
    return a + offset


def contraction(n_frames: int, period: float, phase0: float = 0.0, systole: float = 0.35) -> np.ndarray:
    """(T,) 0 at ED, 1 at ES: a half-cosine fall over ``systole`` of the beat, a half-cosine rise after.

    ED falls at frames ``k * period - phase0`` and ES ``systole * period`` later.
    """
    ph = np.mod(np.arange(n_frames) + phase0, period) / period
    fall = 0.5 * (1 - np.cos(np.pi * ph / systole))
    rise = 0.5 * (1 + np.cos(np.pi * (ph - systole) / (1 - systole)))
    return np.where(ph < systole, fall, rise)


def a4c_loop(
    n_frames: int = 30, period: float = 20.0, phase0: float = 0.0, shrink: float = 0.2, shape=(128, 128), **kw
) -> np.ndarray:
    """(T, H, W) labels of a beating :func:`a4c_labels` shape: long and short axes shrink by ``shrink`` at ES."""
    a, b, offset = kw.pop("a", 40.0), kw.pop("b", 20.0), kw.pop("offset", 10.0)
    f = 1 - shrink * contraction(n_frames, period, phase0)
    return np.stack([a4c_labels(shape, a=a * s, b=b * s, offset=offset * s, **kw) for s in f])
