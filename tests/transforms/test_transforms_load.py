"""The loaded loop's affine holds its spacing, so MONAI spatial transforms keep the spacing right."""

from __future__ import annotations

import numpy as np
import pytest
from io_files import moving_fan, write_us
from monai.transforms import Resize, Resized, Spacing

from echokdm.io import load_cine, loop_spacing
from echokdm.predict import read_input
from echokdm.transforms import LoadCineLoopd

SPACING = [0.3, 0.45]  # (dy, dx) mm


@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    path = tmp_path_factory.mktemp("spacing") / "loop.dcm"
    return write_us(path, moving_fan(t=6, h=40, w=60), spacing_mm=SPACING)


def test_affine_holds_the_spacing_read_from_the_file(dicom):
    loop = load_cine(dicom)
    assert loop.meta["spacing_mm"] == pytest.approx(SPACING)
    assert np.array_equal(loop.affine.numpy(), np.diag([1.0, *loop.meta["spacing_mm"], 1.0]))
    assert loop_spacing(loop) == tuple(loop.meta["spacing_mm"])  # exactly: outputs keep their bytes


def test_resize_to_half_size_doubles_the_spacing(dicom):
    d = Resized(keys="image", spatial_size=(-1, 20, 30))(LoadCineLoopd(keys="image")({"image": dicom}))
    assert tuple(d["image"].shape) == (1, 6, 20, 30)
    assert loop_spacing(d["image"]) == pytest.approx((0.6, 0.9))
    assert d["image"].meta["spacing_mm"] == pytest.approx(SPACING)  # the spacing as read, kept for the report


def test_spacing_transform_resamples_to_the_asked_spacing(dicom):
    loop = Spacing(pixdim=(1.0, 0.6, 0.6))(load_cine(dicom))
    assert tuple(loop.shape[-2:]) == (20, 45)
    assert loop_spacing(loop) == pytest.approx((0.6, 0.6))


def test_predict_reads_the_spacing_of_a_resized_loop(dicom):
    inp = read_input(Resize(spatial_size=(-1, 20, 30))(load_cine(dicom)))
    assert inp.spacing == pytest.approx((0.6, 0.9)) and inp.sector.shape == (20, 30)


def test_unknown_spacing_stays_unknown(tmp_path):
    loop = Resize(spatial_size=(-1, 20, 30))(load_cine(write_us(tmp_path / "bare.dcm", moving_fan(t=6, h=40, w=60))))
    assert loop.meta["spacing_mm"] is None and loop_spacing(loop) is None
