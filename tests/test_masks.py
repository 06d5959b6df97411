"""fill_holes: the pixels of scipy's binary_fill_holes."""

import numpy as np
import pytest
from scipy import ndimage

from echokdm.masks import fill_holes


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.random()
        if rng.random() < 0.5:
            mask = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 3)))
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_fill_holes_fills_a_ring_and_keeps_a_border_gap():
    y, x = np.mgrid[:40, :50]
    r = np.hypot(y - 20, x - 25)
    ring = (r < 12) & (r > 6)
    assert fill_holes(ring).sum() == (r < 12).sum()
    open_ring = ring & ~((y == 20) & (x > 25))  # a 4-connected gap lets the inside out
    assert not fill_holes(open_ring)[20, 25]
    assert not fill_holes(np.zeros((3, 3), bool)).any() and fill_holes(np.ones((3, 3), bool)).all()
