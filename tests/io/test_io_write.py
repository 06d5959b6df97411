"""The DICOM writer: valid US Multi-frame files that round-trip frames, timing and spacing exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from io_files import dciodvfy_errors, moving_fan, pydicom_file

from echokdm.errors import InputError
from echokdm.io import load_cine, read_cine, write_cine_dicom
from echokdm.io.calibration import mm_from_cm


def test_round_trip_is_exact(tmp_path):
    frames = moving_fan(t=7, h=64, w=80)
    spacing = (0.1234567891, 0.3)
    path = tmp_path / "loop.dcm"
    write_cine_dicom(path, frames, frame_time_ms=33.3, spacing_mm=spacing, heart_rate_bpm=61)
    got, meta = read_cine(path, blank_outside_sector=False)
    assert np.array_equal(got, frames)
    assert meta["spacing_mm"] == list(spacing) and meta["spacing_source"] == "ultrasound_region"
    assert meta["frame_time_ms"] == 33.3 and meta["frame_time_source"] == "FrameTime"
    assert meta["heart_rate_bpm"] == 61
    assert meta["sop_class"] == "Ultrasound Multi-frame Image Storage"


def test_spacing_values_read_back_exactly():
    rng = np.random.default_rng(0)
    for mm in [0.1, 0.3, 0.7, 0.1234567891, 1.02099411189556, *np.round(rng.uniform(0.01, 2.0, 2000), 12)]:
        assert mm_from_cm(float(mm) / 10.0) == float(mm)  # what the writer stores, as the reader reads it


def test_new_study_has_empty_patient_and_valid_iod(tmp_path):
    path = tmp_path / "new.dcm"
    write_cine_dicom(path, moving_fan(t=4), frame_time_ms=20.0, spacing_mm=(0.5, 0.5))
    ds = pydicom.dcmread(path)
    assert ds.PatientName == "" and ds.PatientID == ""
    assert list(ds.ImageType)[:1] == ["DERIVED"]
    assert ds.FrameIncrementPointer == 0x00181063 and float(ds.FrameTime) == 20.0
    assert ds.NumberOfFrames == 4 and ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 8
    assert dciodvfy_errors(path) in ([], None)


def test_derived_image_copies_patient_and_study_with_new_series(tmp_path):
    source = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    path = tmp_path / "derived.dcm"
    write_cine_dicom(path, moving_fan(t=3), frame_time_ms=33.333, source=source, derivation="echokdm test")
    ds = pydicom.dcmread(path)
    assert ds.PatientName == source.PatientName and ds.PatientID == source.PatientID
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert dciodvfy_errors(path) in ([], None)


def test_written_file_opens_in_simpleitk_and_dcmtk(tmp_path):
    frames = moving_fan(t=5, h=48, w=64)
    path = tmp_path / "x.dcm"
    write_cine_dicom(path, frames, frame_time_ms=40.0, spacing_mm=(0.2, 0.2))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), frames)
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        assert not os.environ.get("CI"), "dcmdump missing in CI: install dcmtk"
        warnings.warn("dcmdump (dcmtk) not installed: not checked", stacklevel=1)
        return
    out = subprocess.run([dcmdump, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "UltrasoundMultiframeImageStorage" in out.stdout and "FrameTime" in out.stdout
    assert "E:" not in out.stderr


def test_single_frame_and_bad_arguments(tmp_path):
    write_cine_dicom(tmp_path / "one.dcm", moving_fan(t=1)[0], frame_time_ms=40.0)
    assert load_cine(tmp_path / "one.dcm").shape[1] == 1
    with pytest.raises(InputError, match="uint8"):
        write_cine_dicom(tmp_path / "f.dcm", np.zeros((2, 8, 8), np.float32), frame_time_ms=40.0)
    with pytest.raises(InputError, match="frame_time_ms"):
        write_cine_dicom(tmp_path / "t.dcm", np.zeros((2, 8, 8), np.uint8), frame_time_ms=0)
    with pytest.raises(InputError, match="spacing_mm"):
        write_cine_dicom(tmp_path / "s.dcm", np.zeros((2, 8, 8), np.uint8), frame_time_ms=40.0, spacing_mm=(0, 1))


def test_drop_invalid_keeps_valid_decimal_and_integer_strings():
    """pydicom holds DS/IS values as numbers; they are checked as the text they are written as (a valid
    PatientWeight used to be dropped from every derived DICOM)."""
    from pydicom.dataset import Dataset

    from echokdm.io.write import drop_invalid

    ds = Dataset()
    ds.PatientWeight, ds.PatientSize, ds.PatientAge, ds.PatientName = "71.5", "1.7", "053Y", "DOE^JANE"
    assert drop_invalid(ds) == []
    assert float(ds.PatientWeight) == 71.5 and float(ds.PatientSize) == 1.7
