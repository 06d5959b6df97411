"""Small synthetic labelled loops with exact motion, for the evaluation-harness tests.

A fan-shaped sector holds a speckled LV (dark cavity, bright open myocardial "U"), a left atrium below it,
and background tissue. Frame t is the ED frame pulled through a smooth contraction field, so labels, images
and ``ddf_from_ed`` agree exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echokdm.evaluate.cases import Case
from echokdm.flow import warp


def sector(size: int) -> np.ndarray:
    """(H, W) bool fan with its apex at the top centre."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    r, ang = np.hypot(xx - size / 2, yy + 2), np.degrees(np.arctan2(xx - size / 2, yy + 2))
    return (r < size * 0.97) & (np.abs(ang) < 38)


def ed_labels(size: int) -> np.ndarray:
    """(H, W) uint8 CAMUS labels at ED."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    cx, cy, a, b = size * 0.55, size * 0.5, size * 0.28, size * 0.15
    base = cy + 0.6 * a
    e = ((xx - cx) / b) ** 2 + ((yy - cy) / a) ** 2
    cavity = (e < 1) & (yy < base)
    e_out = ((xx - cx) / (b + 5)) ** 2 + ((yy - cy) / (a + 5)) ** 2
    myo = (e_out < 1) & ~cavity & (yy < base + 1) & ~((np.abs(xx - cx) < b) & (yy >= base - 0.5))
    la = (((xx - cx) / (b * 0.9)) ** 2 + ((yy - base) / (size * 0.14)) ** 2 < 1) & (yy >= base) & ~myo
    lab = np.zeros((size, size), np.uint8)
    lab[cavity], lab[myo], lab[la] = 1, 2, 3
    return lab


def contraction(size: int, s: float) -> np.ndarray:
    """(2, H, W) pull field of a contraction of strength ``s`` (0 = none) towards the LV's basal centre."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    cx, cy = size * 0.55, size * 0.62
    dy, dx = yy - cy, xx - cx
    fall = np.exp(-(dx**2 + dy**2) / (2 * (size * 0.3) ** 2))
    # pull: a pixel of the contracted frame comes from farther out in ED
    return np.stack([s * 0.35 * dy * fall, s * 0.3 * dx * fall]).astype(np.float32)


def synthetic_case(seed: int, size: int = 64, frames: int = 6, strength: float = 0.5) -> Case:
    """A loop contracting from ED (frame 0) to ES (last frame), all frames labelled."""
    rng = np.random.default_rng(seed)
    lab = ed_labels(size)
    mask = sector(size)
    tissue = ndimage.gaussian_filter(rng.rayleigh(1.0, (size, size)), (1.2, 0.8))
    tissue = tissue / tissue.max()
    gain = np.choose(lab, [0.45, 0.08, 0.95, 0.1]).astype(float)
    ed_img = np.clip(gain * tissue * 1.6, 0, 1) * mask
    ddf = np.stack([contraction(size, strength * (1 - np.cos(np.pi * t / (frames - 1))) / 2) for t in range(frames)])
    imgs = warp(np.repeat(ed_img[None, None], frames, 0).astype(np.float32), ddf)[:, 0].numpy() * mask
    labs = (
        warp(np.repeat(lab[None, None], frames, 0).astype(np.float32), ddf, mode="nearest")[:, 0]
        .numpy()
        .astype(np.uint8)
    )
    return Case(
        case_id=f"syn{seed:03d}",
        frames=imgs.astype(np.float32),
        labels={t: labs[t] for t in range(frames)},
        ed=0,
        es=frames - 1,
        spacing_mm=(0.3, 0.3),
        sector_mask=mask,
        ddf_from_ed=ddf,
        info={"source": "synthetic"},
    )
