"""DICOM SEG of a label sequence: valid, in the source's study, frame by frame on the source cine, read back equal."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from io_files import dciodvfy_errors, pydicom_file

from echokdm.errors import InputError
from echokdm.io import read_segmentation
from echokdm.io.anonymize import Anonymizer
from echokdm.io.dicom_seg import SEGMENTS, read_segmentation_seg, write_segmentation_seg


def blocks(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(t, h, w) labels 0..3: a different rectangle of each label in every frame, one frame empty."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((t, h, w), np.uint8)
    for k in range(t):
        for value in (1, 2, 3):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            labels[k, y:y + rng.integers(2, 8), x:x + rng.integers(2, 8)] = value
    labels[t // 2] = 0
    return labels


def test_seg_of_phantom_cine_round_trips_and_references_every_frame(phantom_study, tmp_path):
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    path = tmp_path / "seg.dcm"
    write_segmentation_seg(path, phantom_study.labels, source)
    assert dciodvfy_errors(path) in ([], None)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG" and ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    t = len(phantom_study.labels)
    assert ds.NumberOfFrames == t * len(SEGMENTS)  # every frame kept, empty or not
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == source.SOPClassUID
        assert int(ref.ReferencedFrameNumber) == i % t + 1
        assert item.SegmentIdentificationSequence[0].ReferencedSegmentNumber == i // t + 1
    codes = [(s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
              s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator) for s in ds.SegmentSequence]
    assert codes == [
        ("LV cavity", "87878005", "SCT"),
        ("LV myocardium", "49848007", "SCT"),
        ("Left atrium", "82471001", "SCT"),
    ]
    # highdicom and echokdm's own reader give back the NIfTI's labels
    assert np.array_equal(read_segmentation_seg(path, source), phantom_study.labels)
    assert np.array_equal(read_segmentation(path), read_segmentation(phantom_study.labels_nii))


def test_seg_of_a_colour_jpeg_sonosite_loop(tmp_path):
    source = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    labels = blocks(int(source.NumberOfFrames), source.Rows, source.Columns)
    path = tmp_path / "seg.dcm"
    write_segmentation_seg(path, labels, source)
    assert dciodvfy_errors(path) in ([], None)
    ds = pydicom.dcmread(path)
    assert ds.LossyImageCompression == "01"  # derived from lossy JPEG frames
    assert "FrameOfReferenceUID" not in ds  # nothing claimed about patient coordinates
    assert np.array_equal(read_segmentation_seg(path, source), labels)


def test_seg_of_some_frames_points_at_those_frames(phantom_study, tmp_path):
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    path = tmp_path / "seg.dcm"
    write_segmentation_seg(path, phantom_study.labels[[3, 11]], source, frames=[3, 11])
    numbers = {int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
               for f in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence}
    assert numbers == {4, 12}
    assert np.array_equal(read_segmentation_seg(path, source), phantom_study.labels[[3, 11]])


def test_anonymized_seg_keeps_its_references_consistent(tmp_path):
    source = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    anonymizer = Anonymizer()
    path = tmp_path / "seg.dcm"
    before = copy.deepcopy(source)
    write_segmentation_seg(path, blocks(30, source.Rows, source.Columns), source, anonymize=anonymizer)
    assert source == before  # the caller's header is not touched
    assert dciodvfy_errors(path) in ([], None)
    ds = pydicom.dcmread(path)
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != str(source.PatientName)
    assert ds.PatientID != source.PatientID and ds.ContentDate == "19000101"
    assert ds.StudyInstanceUID == anonymizer.uid(source.StudyInstanceUID) != source.StudyInstanceUID
    refs = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            for f in ds.PerFrameFunctionalGroupsSequence}
    assert refs == {anonymizer.uid(source.SOPInstanceUID)}
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == anonymizer.uid(source.SeriesInstanceUID)


def test_bad_labels_and_frames_are_refused(phantom_study, tmp_path):
    source = pydicom.dcmread(phantom_study.dicom, stop_before_pixels=True)
    labels = phantom_study.labels
    with pytest.raises(InputError, match="0..3"):
        write_segmentation_seg(tmp_path / "a.dcm", labels + 4, source)
    with pytest.raises(InputError, match="source image is"):
        write_segmentation_seg(tmp_path / "b.dcm", labels[:, :64], source)
    with pytest.raises(InputError, match="source frames"):
        write_segmentation_seg(tmp_path / "c.dcm", labels[:2], source, frames=[0, len(labels)])
    with pytest.raises(InputError, match="lacks SOPInstanceUID"):
        del source.SOPInstanceUID
        write_segmentation_seg(tmp_path / "d.dcm", labels, source)
    assert not list(tmp_path.iterdir())
