"""``echokdm predict`` on a DICOM cine writes a DICOM SEG of the predicted frames and a DICOM SR of the EFs."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from hardening_files import assert_complete_study, echokdm_inprocess
from io_files import dciodvfy_errors, dsrdump

from echokdm.io import read_segmentation
from echokdm.io.dicom_seg import read_segmentation_seg
from echokdm.io.sr import read_measurements


def predict(*args):
    """``echokdm predict ARGS`` in this process."""
    return echokdm_inprocess("predict", *args, timeout=600)


def refs(ds) -> set[str]:
    return {e.value for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}


@pytest.fixture(scope="module")
def predicted(phantom_study, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_dicom") / "out"
    r = predict("--dicom", phantom_study.dicom, "--seg", phantom_study.labels_nii, "--steps", 1, "--weights",
                tiny_weights, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_seg_of_the_predicted_frames_on_the_prediction(predicted, phantom_study):
    report = assert_complete_study(predicted)  # every listed file reads back, nothing unlisted
    assert report["files"]["seg_dicom"] == "segmentation_seg.dcm" and report["files"]["sr"] == "measurements_sr.dcm"
    prediction = pydicom.dcmread(predicted / "prediction.dcm", stop_before_pixels=True)
    seg = pydicom.dcmread(predicted / "segmentation_seg.dcm")
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    assert seg.StudyInstanceUID == prediction.StudyInstanceUID == source.StudyInstanceUID
    assert len({seg.SeriesInstanceUID, prediction.SeriesInstanceUID, source.SeriesInstanceUID}) == 3
    assert refs(seg) == {prediction.SOPInstanceUID}
    assert dciodvfy_errors(predicted / "segmentation_seg.dcm") in ([], None)
    nifti = read_segmentation(predicted / "segmentation.nii.gz")  # one predicted frame: (H, W)
    assert np.array_equal(
        read_segmentation_seg(predicted / "segmentation_seg.dcm", prediction), nifti.reshape(-1, *nifti.shape[-2:])
    )


def test_sr_of_the_source_beat_target_keypoints_and_prediction(predicted, phantom_study):
    report = json.loads((predicted / "report.json").read_text())
    sr = pydicom.dcmread(predicted / "measurements_sr.dcm")
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    prediction = pydicom.dcmread(predicted / "prediction.dcm", stop_before_pixels=True)
    assert sr.StudyInstanceUID == source.StudyInstanceUID and source.SOPInstanceUID in refs(sr)
    assert dciodvfy_errors(predicted / "measurements_sr.dcm") in ([], None)
    got = read_measurements(predicted / "measurements_sr.dcm")
    ed, es = report["phases"]["beat"]
    src, tgt = report["source_frame"], report["target_frame"]
    beat = got[f"source loop: ED frame {ed}, ES frame {es}"]
    assert beat[0] == ("Left Ventricular Ejection Fraction by US", round(report["ef"]["source_beat"], 1), "%",
                       "Method of Disks, Single Plane", [ed + 1, es + 1])
    gls = [(v, unit, frames) for name, v, unit, _, frames in beat if "GLS" in name]
    assert gls == [(round(report["strain"]["source_beat_gls"], 1), "%", [ed + 1, es + 1])]
    (kp,) = got["target keypoints: the EF they imply"]
    assert kp[1] == round(report["ef"]["target_keypoints"], 1) and kp[4] == [src + 1, tgt + 1]
    if report["ef"]["prediction"] is None:  # untrained segmenter: the prediction's EF may not be measurable
        assert not any(k.startswith("prediction") for k in got)
    else:
        (pr,) = got["prediction: EF of predicted frame 1"]
        assert pr[1] == round(report["ef"]["prediction"], 1) and prediction.SOPInstanceUID in refs(sr)
    text = dsrdump(predicted / "measurements_sr.dcm")
    if text is not None:
        assert f'(,,"Left Ventricular Ejection Fraction by US")="{round(report["ef"]["source_beat"], 1)}"' in text


def test_anonymized_prediction_seg_and_sr_point_at_each_other(phantom_study, tiny_weights, tmp_path):
    out = tmp_path / "out"
    r = predict("--dicom", phantom_study.dicom, "--seg", phantom_study.labels_nii, "--steps", 1, "--weights",
                tiny_weights, "--out", out, "--anonymize")
    assert r.returncode == 0, r.stderr
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    prediction, seg, sr = (
        pydicom.dcmread(out / f) for f in ("prediction.dcm", "segmentation_seg.dcm", "measurements_sr.dcm")
    )
    for ds in (prediction, seg, sr):
        assert ds.PatientIdentityRemoved == "YES" and ds.StudyInstanceUID != source.StudyInstanceUID
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == prediction.StudyInstanceUID
    assert refs(seg) == {prediction.SOPInstanceUID}
    source_ref = prediction.SourceImageSequence[0].ReferencedSOPInstanceUID  # the de-identified source
    assert source_ref in refs(sr) and source.SOPInstanceUID not in refs(sr)
    # the prediction and the de-identified source are evidence of the report's own (de-identified) study
    evidence = sr.CurrentRequestedProcedureEvidenceSequence
    assert {e.StudyInstanceUID for e in evidence} == {
        sr.StudyInstanceUID
    } and "PertinentOtherEvidenceSequence" not in sr
    for name in ("segmentation_seg.dcm", "measurements_sr.dcm"):
        assert dciodvfy_errors(out / name) in ([], None)
