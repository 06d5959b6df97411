"""``echokdm segment`` on a DICOM cine writes a DICOM SEG and SR into the cine's study (or a de-identified copy)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from io_files import dciodvfy_errors, dsrdump

from echokdm.cli import main
from echokdm.io import read_segmentation, write_cine_dicom
from echokdm.io.dicom_seg import read_segmentation_seg
from echokdm.io.nifti import write_label_sequence
from echokdm.io.sr import read_measurements
from echokdm.phantom import sample_params, simulate

PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-77341", "AccessionNumber": "ACC-5512", "StudyDate": "20190304"}


@pytest.fixture(scope="module")
def cine(tmp_path_factory):
    """A calibrated two-beat phantom loop with patient data in its header."""
    root = tmp_path_factory.mktemp("segment_dicom")
    lp = simulate(sample_params(4, size=96, frames=24, n_beats=2))
    path = root / "study.dcm"
    write_cine_dicom(path, (lp.frames * 255).round().astype(np.uint8), frame_time_ms=lp.frame_time_ms,
                     spacing_mm=lp.spacing_mm)
    ds = pydicom.dcmread(path)
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def source_refs(ds) -> set[str]:
    return {e.value for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}


def test_segment_writes_seg_and_sr_in_the_study(cine, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", "--dicom", str(cine), "--out", str(out)]) == 0
    capsys.readouterr()
    source = pydicom.dcmread(cine, stop_before_pixels=True)
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["files"]["seg_dicom"] == "segmentation_seg.dcm" and summary["files"]["sr"] == "measurements_sr.dcm"
    assert summary["dicom_note"] is None
    seg, sr = pydicom.dcmread(out / "segmentation_seg.dcm"), pydicom.dcmread(out / "measurements_sr.dcm")
    for ds in (seg, sr):
        assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == PHI["PatientID"]
        assert source_refs(ds) == {source.SOPInstanceUID}
    assert len({source.SeriesInstanceUID, seg.SeriesInstanceUID, sr.SeriesInstanceUID}) == 3  # new series each
    assert dciodvfy_errors(out / "segmentation_seg.dcm") in ([], None)
    assert dciodvfy_errors(out / "measurements_sr.dcm") in ([], None)
    # the SEG is the NIfTI, frame by frame on the source cine
    nifti = read_segmentation(out / "segmentation.nii.gz")
    assert np.array_equal(read_segmentation_seg(out / "segmentation_seg.dcm", source), nifti)
    # the SR holds the report's numbers, with the frames they were measured on
    report = json.loads((out / "report.json").read_text())
    got = read_measurements(out / "measurements_sr.dcm")
    assert report["beats"], "the phantom loop holds a complete beat"
    for i, beat in enumerate(report["beats"]):
        values = got[f"beat {i + 1}: ED frame {beat['ed']}, ES frame {beat['es']}"]
        ef = {method: (value, frames) for name, value, unit, method, frames in values if "Ejection" in name}
        assert ef["Method of Disks, Single Plane"] == (round(beat["ef_simpson"], 1), [beat["ed"] + 1, beat["es"] + 1])
        assert ef["Area-Length Single Plane"][0] == round(beat["ef_area_length"], 1)
        edv = [v for name, v, unit, method, _ in values if "Diastolic Volume" in name and "Disks" in method]
        assert edv == [round(beat["edv_simpson"], 1)] and "ml" in {unit for _, _, unit, *_ in values}
        gls = [(v, frames) for name, v, unit, _, frames in values if "GLS" in name and unit == "%"]
        assert gls == [(round(beat["gls"], 1), [beat["ed"] + 1, beat["es"] + 1])]
    assert got["cine loop"][0][:3] == ("Heart rate", round(report["heart_rate_bpm"], 1), "{H.B}/min")
    text = dsrdump(out / "measurements_sr.dcm")
    if text is not None:
        assert f'(,,"Left Ventricular Ejection Fraction by US")="{round(report["beats"][0]["ef_simpson"], 1)}"' in text


def test_segment_anonymize_de_identifies_seg_and_sr_consistently(cine, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", "--dicom", str(cine), "--out", str(out), "--anonymize"]) == 0
    capsys.readouterr()
    source = pydicom.dcmread(cine, stop_before_pixels=True)
    seg, sr = pydicom.dcmread(out / "segmentation_seg.dcm"), pydicom.dcmread(out / "measurements_sr.dcm")
    for ds in (seg, sr):
        assert ds.PatientIdentityRemoved == "YES"
        assert not any(v in str(e.value) for e in ds.iterall() for v in PHI.values()), ds.SOPClassUID
        assert ds.StudyInstanceUID != source.StudyInstanceUID
    assert seg.StudyInstanceUID == sr.StudyInstanceUID and source_refs(seg) == source_refs(sr) != {
        source.SOPInstanceUID
    }
    assert dciodvfy_errors(out / "segmentation_seg.dcm") in ([], None)
    assert dciodvfy_errors(out / "measurements_sr.dcm") in ([], None)
    text = "".join(p.read_text() for p in out.glob("*.json"))
    assert str(cine) not in text and cine.name not in text


def test_segment_of_a_non_dicom_loop_writes_no_dicom(cine, tmp_path, capsys):
    frames = pydicom.dcmread(cine).pixel_array
    nii = tmp_path / "loop.nii.gz"
    write_label_sequence(nii, frames)  # an 8-bit NIfTI sequence, as a loop
    out = tmp_path / "out"
    assert main(["segment", "--dicom", str(nii), "--out", str(out)]) == 0
    capsys.readouterr()
    summary = json.loads((out / "segmentation.json").read_text())
    assert "not DICOM" in summary["dicom_note"]
    assert not list(out.glob("*.dcm"))
