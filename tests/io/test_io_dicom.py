"""DICOM decoding: every transfer syntax and photometric interpretation, grey conversion, timing."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
import torch
from io_files import moving_fan, pydicom_file, relabel_as_us, write_us
from pydicom.pixels import apply_color_lut, convert_color_space, iter_pixels
from pydicom.uid import JPEGLSLossless, RLELossless

from echokdm.errors import InputError
from echokdm.io import frame_timing, load_cine, read_cine, read_dicom_cine, require_loop
from echokdm.transforms import LoadCineLoop, LoadCineLoopd


def luma_cv2(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma computed by OpenCV (an implementation independent of echokdm's)."""
    return np.stack(
        [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb.reshape(-1, *rgb.shape[-3:])]
    )


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_sonosite_jpeg_ybr422_is_converted_to_grey_once():
    path = pydicom_file("examples_ybr_color.dcm")
    frames, meta, regions = read_dicom_cine(path)
    assert frames.shape == (30, 240, 320) and frames.dtype == np.uint8
    assert meta["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.50"
    assert meta["photometric_interpretation"] == "YBR_FULL_422"
    assert meta["original_shape"] == [30, 240, 320, 3]
    assert len(regions) == 1
    # grey == Y of the stored YCbCr, up to rounding and the clipping of saturated colours in YCbCr -> RGB
    y = np.stack([f[..., 0] for f in iter_pixels(path, raw=True)])
    diff = np.abs(frames.astype(int) - y)
    assert diff.mean() < 0.05 and (diff <= 1).mean() > 0.998 and diff.max() <= 8
    # converting the (already RGB) output from YCbCr a second time would be far off
    rgb = pydicom.dcmread(path).pixel_array
    twice = luma_cv2(convert_color_space(rgb, "YBR_FULL", "RGB"))
    assert np.abs(twice.astype(int) - y).mean() > 10


@pytest.mark.parametrize(
    "name, shape",
    [
        ("examples_rgb_color.dcm", (1, 240, 320)),  # RGB, explicit little endian
        ("ExplVR_BigEnd.dcm", (1, 60, 80)),  # RGB, explicit big endian, planar configuration 1
        ("examples_jpeg2k.dcm", (1, 480, 640)),  # JPEG 2000 lossless, YBR_RCT
    ],
)
def test_real_colour_files_match_independent_luma(name, shape):
    path = pydicom_file(name)
    frames, meta, _ = read_dicom_cine(path)
    assert frames.shape == shape
    reference = luma_cv2(pydicom.dcmread(path).pixel_array)
    assert max_diff(frames, reference) <= 1


def test_real_palette_colour_goes_through_its_lookup_table():
    path = pydicom_file("examples_palette.dcm")
    frames, meta, _ = read_dicom_cine(path)
    ds = pydicom.dcmread(path)
    rgb16 = apply_color_lut(ds.pixel_array, ds)
    reference = luma_cv2((rgb16 >> 8).astype(np.uint8))
    assert meta["photometric_interpretation"] == "PALETTE COLOR"
    assert frames.shape == (1, 350, 800)
    assert max_diff(frames, reference) <= 1
    assert max_diff(frames[0], ds.pixel_array) > 10  # indices are not grey levels


@pytest.mark.parametrize(
    "name, syntax",
    [
        ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51"),  # JPEG extended, 12-bit
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),  # JPEG-LS lossless, 16-bit signed
        ("SC_rgb_jls_lossy_line.dcm", "1.2.840.10008.1.2.4.81"),  # JPEG-LS near-lossless, RGB
        ("SC_rgb_rle_2frame.dcm", "1.2.840.10008.1.2.5"),  # RLE, RGB, 2 frames
        ("SC_ybr_full_422_uncompressed.dcm", "1.2.840.10008.1.2.1"),  # native YBR_FULL_422
        ("SC_jpeg_no_color_transform.dcm", "1.2.840.10008.1.2.4.50"),  # JPEG baseline holding RGB
        ("image_dfl.dcm", "1.2.840.10008.1.2.1.99"),  # deflated explicit little endian
    ],
)
def test_real_codestreams_decode(tmp_path, name, syntax):
    path = relabel_as_us(name, tmp_path / "us.dcm")
    frames, meta, _ = read_dicom_cine(path)
    ds = pydicom.dcmread(path)
    assert meta["transfer_syntax_uid"] == syntax
    arr = ds.pixel_array
    n = int(ds.get("NumberOfFrames", 1) or 1)
    assert frames.shape == (n, ds.Rows, ds.Columns)
    if ds.SamplesPerPixel == 3:
        assert max_diff(frames, luma_cv2(arr)) <= 1
    else:
        bits = ds.BitsStored
        grey = arr.astype(np.float64) + (2 ** (bits - 1) if ds.PixelRepresentation else 0)
        assert max_diff(frames.reshape(arr.shape), np.rint(grey * 255 / (2**bits - 1))) <= 1


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless])
def test_self_written_compressed_loops_decode_exactly(tmp_path, syntax):
    frames = moving_fan(t=5)
    path = write_us(tmp_path / "c.dcm", frames, edit=lambda ds: ds.compress(syntax))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    got, meta, _ = read_dicom_cine(path)
    assert np.array_equal(got, frames)


def test_rle_rgb_multiframe_written_by_pydicom(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(3, 32, 40, 3), dtype=np.uint8)

    def to_rgb_rle(ds):
        ds.set_pixel_data(rgb, "RGB", 8)
        ds.compress(RLELossless)

    path = write_us(tmp_path / "rgb.dcm", moving_fan(t=3, h=32, w=40), edit=to_rgb_rle)
    got, meta, _ = read_dicom_cine(path)
    assert meta["photometric_interpretation"] == "RGB" and meta["original_shape"] == [3, 32, 40, 3]
    assert max_diff(got, luma_cv2(rgb)) <= 1


def test_monochrome1_is_inverted(tmp_path):
    frames = moving_fan(t=3)

    def mono1(ds):
        ds.PhotometricInterpretation = "MONOCHROME1"

    got, meta, _ = read_dicom_cine(write_us(tmp_path / "m1.dcm", frames, edit=mono1))
    assert meta["photometric_interpretation"] == "MONOCHROME1"
    assert np.array_equal(got, 255 - frames)


def test_frame_time_sources_in_order():
    ds = pydicom.Dataset()
    assert frame_timing(ds) == {"frame_time_ms": None, "frame_time_source": "unknown"}
    ds.RecommendedDisplayFrameRate = 50
    assert frame_timing(ds) == {"frame_time_ms": 20.0, "frame_time_source": "RecommendedDisplayFrameRate"}
    ds.CineRate = 25
    assert frame_timing(ds) == {"frame_time_ms": 40.0, "frame_time_source": "CineRate"}
    ds.FrameTimeVector = [0, 30, 34, 32]
    timing = frame_timing(ds)
    assert timing["frame_time_source"] == "FrameTimeVector" and timing["frame_time_ms"] == pytest.approx(32.0)
    ds.FrameTime = 33.3
    assert frame_timing(ds) == {"frame_time_ms": 33.3, "frame_time_source": "FrameTime"}


def test_frame_time_vector_file(tmp_path):
    def to_vector(ds):
        del ds.FrameTime
        del ds.CineRate
        ds.FrameIncrementPointer = 0x00181065
        ds.FrameTimeVector = [0] + [25.0] * (ds.NumberOfFrames - 1)

    img = load_cine(write_us(tmp_path / "ftv.dcm", edit=to_vector))
    assert img.meta["frame_time_source"] == "FrameTimeVector"
    assert img.meta["frame_time_ms"] == pytest.approx(25.0)
    assert img.meta["frame_rate_hz"] == pytest.approx(40.0)


def test_no_timing_is_unknown_not_invented(tmp_path):
    def strip(ds):
        del ds.FrameTime
        del ds.CineRate

    _, meta = read_cine(write_us(tmp_path / "nt.dcm", edit=strip))
    assert meta["frame_time_ms"] is None and meta["frame_rate_hz"] is None
    assert meta["frame_time_source"] == "unknown"


def test_single_frame_loads_as_t1_and_require_loop_refuses(tmp_path):
    img = LoadCineLoop()(pydicom_file("examples_rgb_color.dcm"))
    assert tuple(img.shape) == (1, 1, 240, 320)
    with pytest.raises(InputError, match="at least 2 frames"):
        require_loop(img)
    require_loop(load_cine(pydicom_file("examples_ybr_color.dcm")))


def test_transforms_return_float_metatensor_without_patient_fields(tmp_path):
    from monai.data import MetaTensor
    from monai.transforms import Compose

    def with_phi(ds):
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "PID-4711"
        ds.PatientBirthDate = "19500101"
        ds.HeartRate = 72

    path = write_us(tmp_path / "phi.dcm", edit=with_phi, spacing_mm=(0.3, 0.25))
    out = Compose([LoadCineLoopd(keys=["image", "other"], allow_missing_keys=True)])({"image": str(path)})
    img = out["image"]
    assert isinstance(img, MetaTensor) and img.dtype == torch.float32
    assert tuple(img.shape) == (1, 12, 96, 128) and float(img.min()) >= 0 and float(img.max()) <= 1
    meta = img.meta
    for key in ("n_frames", "frame_time_ms", "frame_rate_hz", "heart_rate_bpm", "spacing_mm", "spacing_source",
                "sector_mask", "manufacturer", "model", "transfer_syntax", "photometric_interpretation",
                "original_shape", "study_instance_uid", "series_instance_uid"):
        assert key in meta, key
    assert meta["heart_rate_bpm"] == 72 and meta["spacing_mm"] == [0.3, 0.25]
    text = repr({k: v for k, v in meta.items() if k != "sector_mask"})
    for secret in ("Doe", "Jane", "PID-4711", "19500101"):
        assert secret not in text
    assert not any(k.lower().startswith("patient") for k in meta)
    with pytest.raises(KeyError):
        LoadCineLoopd(keys=["missing"])({"image": str(path)})
