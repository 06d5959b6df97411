"""Sector (fan) mask: keeps the imaging fan, drops burned-in text, UI and scale marks."""

from __future__ import annotations

import numpy as np
from io_files import fan_mask, moving_fan, pydicom_file
from scipy import ndimage

from echokdm.io import read_cine, sector_mask


def test_sonosite_mask_keeps_the_fan_and_drops_the_annotations():
    raw, meta = read_cine(pydicom_file("examples_ybr_color.dcm"), blank_outside_sector=False)
    mask = meta["sector_mask"]
    assert mask.shape == (240, 320)
    assert 0.3 < mask.mean() < 0.45
    # the fan: every pixel whose speckle changes over time inside the region box is kept
    x0, y0, x1, y1 = meta["region_box"]
    moving = raw.astype(np.float32).std(axis=0) > 4
    in_box = np.zeros_like(mask)
    in_box[y0 : y1 + 1, x0 : x1 + 1] = True
    assert mask[moving & in_box].mean() > 0.99
    assert mask[120, 160] and mask[200, 170]  # centre and bottom of the fan
    # the annotations: text top-left ("PLA", "Gen THI"), the right column (MI/TIS), the bottom UI bar,
    # the depth "19" at the bottom right and the green orientation marker by the apex
    static_bright = (raw.min(axis=0) > 40) & (raw.std(axis=0) < 1)
    assert static_bright.sum() > 500  # there is burned-in text to drop
    assert not mask[static_bright].any()
    assert not mask[:12, :40].any() and not mask[:, 300:].any() and not mask[215:].any()
    assert not mask[200:212, 280:300].any()  # "19"
    marker = ndimage.binary_dilation(raw[..., :25, 180:200].max(axis=0) > 100)
    assert not mask[:25, 180:200][marker].any()


def test_blanking_zeroes_outside_and_keeps_inside():
    path = pydicom_file("examples_ybr_color.dcm")
    raw, meta = read_cine(path, blank_outside_sector=False)
    blanked, _ = read_cine(path)
    mask = meta["sector_mask"]
    assert not blanked[:, ~mask].any()
    assert np.array_equal(blanked[:, mask], raw[:, mask])


def test_synthetic_fan_is_recovered():
    frames = moving_fan(t=8, h=96, w=128)
    truth = fan_mask(96, 128)
    mask = sector_mask(frames)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.95
    assert not mask[2:10, 2:30].any() and not mask[92:95, 88:126].any()


def test_still_image_uses_speckle_texture_not_flat_ui():
    rng = np.random.default_rng(0)
    frames = np.zeros((1, 80, 100), np.uint8)
    frames[0, :12, :] = 90  # a flat UI header, larger than the image
    frames[0, 30:70, 20:70] = rng.integers(20, 200, size=(40, 50))  # the speckled image
    frames[0, 2:6, 2:12] = 255  # a label in the header
    mask = sector_mask(frames)
    assert mask[30:70, 20:70].mean() > 0.97
    assert not mask[:20].any() and not mask[:, 75:].any()


def test_palette_still_image_keeps_its_fan():
    _, meta = read_cine(pydicom_file("examples_palette.dcm"))
    x0, y0, x1, y1 = meta["sector_box"]
    assert 320 <= x0 <= 340 and 60 <= y0 <= 70 and 580 <= x1 <= 600 and 145 <= y1 <= 160
