"""DICOM SR measurement report (TID 1500): valid, listed by dcmtk, read back by highdicom, codes and references."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from io_files import dciodvfy_errors, dsrdump, pydicom_file

from echokdm.errors import InputError
from echokdm.io import write_cine_dicom
from echokdm.io.anonymize import Anonymizer
from echokdm.io.sr import Measured, MeasurementGroup, beat_group, read_measurements, write_measurement_sr

BEAT = {"ed": 3, "es": 12, "ef_simpson": 55.24, "ef_area_length": 57.01, "edv_simpson": 101.26, "esv_simpson": 45.33,
        "edv_area_length": 110.0, "esv_area_length": 47.3, "gls": -18.44}


@pytest.fixture(scope="module")
def source():
    return pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"), stop_before_pixels=True)


def groups(calibrated: bool = True) -> list[MeasurementGroup]:
    return [beat_group("beat 1: ED frame 3, ES frame 12", BEAT, calibrated),
            MeasurementGroup("cine loop", [Measured("heart_rate", 71.62)])]


def test_report_is_valid_and_reads_back(source, tmp_path):
    path = tmp_path / "sr.dcm"
    write_measurement_sr(path, groups(), [source])
    assert dciodvfy_errors(path) in ([], None)
    ds = pydicom.dcmread(path)
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.PatientID == source.PatientID and ds.Modality == "SR"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == source.SOPInstanceUID
    got = read_measurements(path)
    simpson, area_length = "Method of Disks, Single Plane", "Area-Length Single Plane"
    assert got["beat 1: ED frame 3, ES frame 12"] == [
        ("Left Ventricular Ejection Fraction by US", 55.2, "%", simpson, [4, 13]),
        ("Left Ventricular Ejection Fraction by US", 57.0, "%", area_length, [4, 13]),
        ("Left Ventricular End Diastolic Volume", 101.3, "ml", simpson, [4]),
        ("Left Ventricular End Systolic Volume", 45.3, "ml", simpson, [13]),
        ("Left Ventricular End Diastolic Volume", 110.0, "ml", area_length, [4]),
        ("Left Ventricular End Systolic Volume", 47.3, "ml", area_length, [13]),
        ("LV End-systolic GLS 4CH (Endocardial)", -18.4, "%", None, [4, 13]),
    ]
    assert got["cine loop"] == [("Heart rate", 71.6, "{H.B}/min", None, [])]
    text = dsrdump(path)
    if text is not None:
        assert '(,,"Left Ventricular Ejection Fraction by US")="55.2" (%,UCUM,"percent")' in text
        assert "(125208,DCM,\"Method of Disks, Single Plane\")" in text and "(USm image,,4,...)" in text


def test_codes_come_from_loinc_dcm_and_sct(source, tmp_path):
    path = tmp_path / "sr.dcm"
    write_measurement_sr(path, groups(), [source])
    seen = {(c.CodingSchemeDesignator, c.CodeValue) for e in pydicom.dcmread(path).iterall() if e.VR == "SQ"
            for c in e.value if "CodeValue" in c}
    for code in [("LN", "18043-0"), ("LN", "18026-5"), ("LN", "18148-7"), ("LN", "8867-4"), ("DCM", "130687"),
                 ("DCM", "125208"), ("DCM", "125205"), ("SCT", "87878005"), ("SCT", "40701008"),
                 ("UCUM", "%"), ("UCUM", "ml"), ("UCUM", "{H.B}/min"), ("DCM", "126000")]:
        assert code in seen, code


def test_uncalibrated_loop_reports_no_volumes(source, tmp_path):
    path = tmp_path / "sr.dcm"
    write_measurement_sr(path, groups(calibrated=False), [source])
    names = {name for values in read_measurements(path).values() for name, *_ in values}
    assert names == {"Left Ventricular Ejection Fraction by US", "LV End-systolic GLS 4CH (Endocardial)", "Heart rate"}


def test_values_measured_on_two_images(source, tmp_path):
    derived = tmp_path / "derived.dcm"
    write_cine_dicom(derived, np.zeros((2, 8, 8), np.uint8), frame_time_ms=40.0, source=source)
    prediction = pydicom.dcmread(derived, stop_before_pixels=True)
    path = tmp_path / "sr.dcm"
    ef = Measured("ef", 41.27, "simpson", ((0, (3,)), (1, (1,))))  # source frame 3 against frame 1 of the other
    write_measurement_sr(path, [MeasurementGroup("prediction", [ef])], [source, prediction])
    assert dciodvfy_errors(path) in ([], None)
    assert read_measurements(path) == {"prediction": [("Left Ventricular Ejection Fraction by US", 41.3, "%",
                                                       "Method of Disks, Single Plane", [4, 2])]}
    ds = pydicom.dcmread(path)
    evidence = {r.ReferencedSOPInstanceUID for s in ds.CurrentRequestedProcedureEvidenceSequence
                for series in s.ReferencedSeriesSequence for r in series.ReferencedSOPSequence}
    assert evidence == {source.SOPInstanceUID, prediction.SOPInstanceUID}


def test_anonymized_report_keeps_its_content_and_references(source, tmp_path):
    anonymizer = Anonymizer()
    path = tmp_path / "sr.dcm"
    before = copy.deepcopy(source)
    write_measurement_sr(path, groups(), [source], anonymize=anonymizer)
    assert source == before  # the caller's header is not touched
    assert dciodvfy_errors(path) in ([], None)
    ds = pydicom.dcmread(path)
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != source.PatientID
    assert ds.StudyInstanceUID == anonymizer.uid(source.StudyInstanceUID)
    refs = {e.value for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    assert refs == {anonymizer.uid(source.SOPInstanceUID)}
    assert read_measurements(path)["beat 1: ED frame 3, ES frame 12"][0][1] == 55.2
    text = dsrdump(path)
    assert text is None or "PLA" not in text and '="55.2"' in text


def test_bad_reports_are_refused(source, tmp_path):
    with pytest.raises(InputError, match="no values"):
        write_measurement_sr(tmp_path / "a.dcm", [MeasurementGroup("empty")], [source])
    with pytest.raises(InputError, match="not a finite number"):
        write_measurement_sr(tmp_path / "b.dcm", [MeasurementGroup("x", [Measured("ef", np.nan)])], [source])
    with pytest.raises(InputError, match="frames"):
        write_measurement_sr(
            tmp_path / "c.dcm", [MeasurementGroup("x", [Measured("ef", 50.0, "simpson", ((0, (0, 30)),))])], [source]
        )
    with pytest.raises(InputError, match="image 1"):
        write_measurement_sr(
            tmp_path / "c.dcm", [MeasurementGroup("x", [Measured("ef", 50.0, "simpson", ((1, ()),))])], [source]
        )
    with pytest.raises(InputError, match="unknown measurement"):
        write_measurement_sr(tmp_path / "d.dcm", [MeasurementGroup("x", [Measured("ef", 50.0, "teichholz")])], [source])
    assert not list(tmp_path.iterdir())
