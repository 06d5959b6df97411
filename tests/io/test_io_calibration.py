"""Spacing from ultrasound regions: exact, resized matrices, cropped images, multiple regions."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
from io_files import fan_mask, moving_fan, pydicom_file, region, write_us
from pydicom.sequence import Sequence

from echokdm.io import load_cine, mask_box, read_cine


def test_sonosite_region_box_is_recognised_as_a_resized_matrix():
    _, meta = read_cine(pydicom_file("examples_ybr_color.dcm"))
    delta_cm = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm")).SequenceOfUltrasoundRegions[0].PhysicalDeltaX
    assert meta["spacing_source"] == "ultrasound_region_rescaled"
    assert meta["spacing_mm"] == pytest.approx([delta_cm * 20, delta_cm * 20])
    assert meta["spacing_mm"][0] == pytest.approx(1.021, abs=1e-3)
    assert "640x480" in meta["spacing_warning"]
    assert meta["region_box"] == [41, 15, 298, 207]


def test_cropped_image_spacing_is_unreliable_with_a_warning():
    # Philips palette image: region box reaches row 518 of a 350-row matrix, and no scale fits the content
    _, meta = read_cine(pydicom_file("examples_palette.dcm"))
    assert meta["spacing_mm"] is None
    assert meta["spacing_source"] == "unreliable"
    assert "does not fit the 800x350 matrix" in meta["spacing_warning"]


def test_fitting_region_gives_its_spacing_exactly(tmp_path):
    path = write_us(tmp_path / "a.dcm", spacing_mm=(0.3, 0.27))
    img = load_cine(path)
    assert img.meta["spacing_mm"] == [0.3, 0.27]
    assert img.meta["spacing_source"] == "ultrasound_region"
    assert img.meta["spacing_warning"] is None


def test_loop_resized_after_acquisition_gets_scaled_spacing(tmp_path):
    frames = moving_fan(t=10, h=192, w=256)
    box = mask_box(fan_mask(192, 256))  # tight around the fan, as scanners write it

    def halve(ds):
        small = np.stack([cv2.resize(f, (128, 96), interpolation=cv2.INTER_AREA) for f in frames])
        ds.Rows, ds.Columns = 96, 128
        ds.PixelData = small.tobytes()
        ds.SequenceOfUltrasoundRegions = Sequence([region(box, (0.025, 0.025))])

    _, meta = read_cine(write_us(tmp_path / "r.dcm", frames, edit=halve))
    assert meta["spacing_source"] == "ultrasound_region_rescaled"
    assert meta["spacing_mm"] == pytest.approx([0.5, 0.5])
    assert "256x192" in meta["spacing_warning"] and "scaled by 2" in meta["spacing_warning"]


def test_regions_that_agree_are_used_and_regions_that_disagree_are_not(tmp_path):
    def two_regions(deltas):
        def edit(ds):
            ds.SequenceOfUltrasoundRegions = Sequence(
                [region((0, 0, 127, 95), deltas[0]), region((30, 20, 90, 70), deltas[1], data_type=2)]
            )

        return edit

    _, agree = read_cine(write_us(tmp_path / "agree.dcm", edit=two_regions([(0.03, 0.03), (0.03, 0.03)])))
    assert agree["spacing_mm"] == pytest.approx([0.3, 0.3]) and agree["spacing_source"] == "ultrasound_region"
    assert agree["region_box"] == [0, 0, 127, 95]  # the tissue box, not the colour box inside it
    _, disagree = read_cine(write_us(tmp_path / "disagree.dcm", edit=two_regions([(0.03, 0.03), (0.05, 0.05)])))
    assert disagree["spacing_mm"] is None and disagree["spacing_source"] == "unreliable"
    assert "disagree" in disagree["spacing_warning"]


def test_pixel_spacing_is_used_without_regions_and_nothing_is_invented(tmp_path):
    def pixel_spacing(ds):
        ds.PixelSpacing = [0.4, 0.35]

    _, meta = read_cine(write_us(tmp_path / "ps.dcm", edit=pixel_spacing))
    assert meta["spacing_mm"] == [0.4, 0.35] and meta["spacing_source"] == "PixelSpacing"
    _, none = read_cine(write_us(tmp_path / "none.dcm"))
    assert none["spacing_mm"] is None and none["spacing_source"] == "unknown"
