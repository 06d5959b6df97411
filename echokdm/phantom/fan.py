"""The imaged fan: the Cartesian pixel grid of a phantom loop and the sector it shows (renderer-neutral)."""

from __future__ import annotations

import math

import numpy as np

from echokdm.phantom.params import PhantomParams


class Fan:
    """Pixel grid and sector mask of one loop; every renderer draws into it and the labels use it.

    The transducer (fan apex) sits one pixel below the top edge, centred; pixels are square with
    ``p.spacing_mm``. Image-plane coordinates are mm: ``x`` lateral (right positive), ``y`` depth.

    Args:
        p: parameters (image size, depth, sector angle).
    """

    def __init__(self, p: PhantomParams) -> None:
        self.H, self.W = p.height, p.width
        self.spacing = p.spacing_mm
        self.row0, self.col0 = 1.0, (self.W - 1) / 2.0
        self.depth = p.depth_mm
        self.half = math.radians(p.sector_deg) / 2.0
        r, t = self.pixel_polar()
        self.sector_mask = (r <= self.depth) & (np.abs(t) <= self.half) & (self.pixel_mm()[1] >= 0)

    def pixel_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in mm of every pixel centre, each (H, W)."""
        yy, xx = np.mgrid[: self.H, : self.W].astype(np.float64)
        return (xx - self.col0) * self.spacing, (yy - self.row0) * self.spacing

    def pixel_polar(self) -> tuple[np.ndarray, np.ndarray]:
        """(range mm, angle rad from the centre line, right positive) of every pixel centre, each (H, W)."""
        x, y = self.pixel_mm()
        return np.hypot(x, y), np.arctan2(x, y)

    def mm_to_px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image mm -> (row, col) pixel coordinates."""
        return y / self.spacing + self.row0, x / self.spacing + self.col0
