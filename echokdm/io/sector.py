"""The imaging sector (fan) of an ultrasound loop, found from pixel statistics over time.

Speckle inside the fan changes from frame to frame; burned-in text, scale bars, the ECG trace's
background and colour UI outside it do not (or lie outside the calibrated region box). The sector is
the convex hull of the largest group of changing pixels, limited to the region box when one is known.
A single frame has no motion: there the speckle texture takes its place.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image, disk

#: a pixel whose grey level (0..255) varies over time with a standard deviation above this is "moving"
MOTION_STD = 0.5
#: without motion (a single frame, or a still loop), a pixel is "textured" (speckle) when the grey levels
#: in its 5x5 neighbourhood have a standard deviation above TEXTURE_STD and a mean above CONTENT_LEVEL;
#: flat UI panels and backgrounds are not
TEXTURE_STD = 4.0
CONTENT_LEVEL = 8.0
#: fraction of the image that must move before motion is trusted over texture
MIN_MOVING_FRACTION = 0.01

Box = tuple[int, int, int, int]


def active_pixels(frames: np.ndarray, rows_per_chunk: int = 64) -> np.ndarray:
    """Pixels that carry image content: moving over time, or textured when the loop does not move.

    Args:
        frames: (T, H, W) uint8 grey frames.
        rows_per_chunk: rows processed at once (bounds the float32 working memory to T*rows*W*4 bytes).

    Returns:
        (H, W) bool.
    """
    t, h, w = frames.shape
    if t >= 2:
        std = np.empty((h, w), np.float32)
        for r in range(0, h, rows_per_chunk):
            std[r : r + rows_per_chunk] = frames[:, r : r + rows_per_chunk].astype(np.float32).std(axis=0)
        moving = std > MOTION_STD
        if moving.mean() >= MIN_MOVING_FRACTION:
            return moving
    grey = frames[0].astype(np.float32)
    mean = ndimage.uniform_filter(grey, 5)
    local_var = ndimage.uniform_filter(grey * grey, 5) - mean * mean
    return (local_var > TEXTURE_STD**2) & (mean > CONTENT_LEVEL)


def imaging_region(active: np.ndarray, box: Box | None = None) -> np.ndarray:
    """The convex region spanned by the largest connected group of active pixels.

    Args:
        active: (H, W) bool from :func:`active_pixels`.
        box: optional (x0, y0, x1, y1) inclusive pixel box the region must lie in.

    Returns:
        (H, W) bool mask; the whole box (or image) when nothing is active there.
    """
    h, w = active.shape
    inside = np.zeros_like(active)
    x0, y0, x1, y1 = box if box is not None else (0, 0, w - 1, h - 1)
    inside[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    cleaned = ndimage.binary_opening(active & inside, structure=disk(1))
    labels, n = ndimage.label(cleaned)
    if n == 0:
        return inside
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    largest |= ndimage.binary_dilation(largest, structure=disk(1)) & active & inside  # undo the opening's erosion
    return convex_hull_image(largest) & inside


def sector_mask(frames: np.ndarray, box: Box | None = None) -> np.ndarray:
    """The fan-shaped imaging region of a loop.

    Args:
        frames: (T, H, W) uint8 grey frames.
        box: optional (x0, y0, x1, y1) region box (inclusive pixels) from the ultrasound calibration.

    Returns:
        (H, W) bool, True inside the sector.
    """
    return imaging_region(active_pixels(frames), box)


def mask_box(mask: np.ndarray) -> Box | None:
    """Inclusive bounding box (x0, y0, x1, y1) of a (H, W) mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
