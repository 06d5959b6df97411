"""Privacy: no patient data in anything echokdm prints or writes besides the DICOM patient/study module of a
derived image, and ``--anonymize`` applies the DICOM PS3.15 basic confidentiality profile attribute by attribute.

The input carries fake PHI in the patient, study and equipment modules, a private attribute, and burned-in
"text" outside the sector. The commands run in this process as the console entry point runs them (what they
print is what a user sees: messages, warnings and C-level output on stderr)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from hardening_files import echokdm_inprocess, one_error_line, read_csv, write_manifest
from io_files import dciodvfy_errors
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from echokdm.io import write_cine_dicom
from echokdm.io.anonymize import DUMMY_TIMES, PROFILE_TABLE, Anonymizer
from echokdm.io.write import PATIENT_STUDY_KEYWORDS

PHI = {
    "PatientName": "DOE^JANE",
    "PatientID": "PHI123456",
    "IssuerOfPatientID": "PHIISSUER",
    "PatientBirthDate": "19710203",
    "PatientSex": "F",
    "PatientAge": "053Y",
    "PatientWeight": "71.5",
    "OtherPatientIDs": "OTHERPHI99",
    "PatientAddress": "12 PHI STREET",
    "StudyDate": "20190304",
    "StudyTime": "101112",
    "StudyID": "STUDYPHI1",
    "AccessionNumber": "ACC7766",
    "StudyDescription": "ECHO DOE FOLLOWUP",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "InstitutionName": "ST ELSEWHERE HOSPITAL",
    "OperatorsName": "OPPHI^NURSE",
    "StationName": "PHISTATION",
}
#: strings that must not appear: in text (JSON, CSV, messages) all of them; in binary files the long ones
TEXT_TOKENS = ["DOE", "JANE", "PHI123456", "PHIISSUER", "19710203", "OTHERPHI99", "PHI STREET", "20190304", "STUDYPHI1",
               "ACC7766", "FOLLOWUP", "HOUSE", "GREGORY", "ELSEWHERE", "OPPHI", "PHISTATION", "PRIVATEPHI"]
BINARY_TOKENS = [t for t in TEXT_TOKENS if len(t) >= 7]
TEXT_SUFFIXES = (".json", ".csv", ".txt")
#: burned-in "text" above the phantom's sector (rows, columns)
BURNED = (slice(2, 9), slice(4, 40))


@pytest.fixture(scope="module")
def phi(phantom_study, tmp_path_factory) -> Path:
    """A folder with ``study.dcm`` (the phantom loop with fake PHI and burned-in text), ``labels.nii.gz`` and
    ``one_frame.dcm`` (a single frame with the same PHI: a study that fails)."""
    root = tmp_path_factory.mktemp("phi")
    frames = phantom_study.frames.copy()
    frames[(slice(None), *BURNED)] = 255
    for name, f in (("study.dcm", frames), ("one_frame.dcm", frames[:1])):
        write_cine_dicom(root / name, f, frame_time_ms=40.0, spacing_mm=(0.3, 0.3))
        ds = pydicom.dcmread(root / name)
        for keyword, value in PHI.items():
            setattr(ds, keyword, value)
        ds.private_block(0x0009, "PHI CREATOR", create=True).add_new(0x10, "LO", "PRIVATEPHI DOE")
        ds.save_as(root / name)
    (root / "labels.nii.gz").write_bytes(phantom_study.labels_nii.read_bytes())
    return root


def batch(phi: Path, tiny_weights: Path, out: Path, *flags):
    manifest = write_manifest(out.parent / f"{out.name}.csv", [
        ("a", phi / "study.dcm", phi / "labels.nii.gz", ""),
        ("b", phi / "study.dcm", phi / "labels.nii.gz", "40"),
        ("c", phi / "one_frame.dcm", "", ""),
    ], header=("study_id", "dicom", "seg", "target_ef"))
    r = echokdm_inprocess("predict-batch", "--manifest", manifest, "--out", out, "--steps", 1, "--weights",
                          tiny_weights, *flags)
    assert r.returncode == 1, r.stderr  # c fails: a single frame
    assert "at least 2 frames" in read_csv(out / "failures.csv")[0]["reason"]
    return r


def assert_no_phi(folder: Path, messages: str, skip: tuple[str, ...] = ()) -> None:
    """No PHI token in any file under ``folder`` (but ``skip``) nor in ``messages``."""
    for token in TEXT_TOKENS:
        assert token not in messages, token
    checked = 0
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name in skip:
            continue
        data = p.read_bytes()
        for token in TEXT_TOKENS if p.suffix in TEXT_SUFFIXES else BINARY_TOKENS:
            assert token.encode() not in data, (p, token)
        checked += 1
    assert checked >= 10


@pytest.fixture(scope="module")
def plain(phi, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "batch"
    return out, batch(phi, tiny_weights, out)


@pytest.fixture(scope="module")
def anonymized(phi, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("anonymized") / "batch"
    return out, batch(phi, tiny_weights, out, "--anonymize")


def test_no_phi_outside_the_derived_dicom(plain, phi):
    out, r = plain
    derived = ("prediction.dcm", "segmentation_seg.dcm", "measurements_sr.dcm")
    assert_no_phi(out, r.stdout + r.stderr, skip=derived)
    # the DICOM keeps the patient and study modules of its source, as a derived image of the same study does,
    # and nothing else of the source: no equipment, other IDs, address, private data
    source = pydicom.dcmread(phi / "study.dcm")
    for sid, name in ((sid, name) for sid in ("a", "b") for name in derived):
        ds = pydicom.dcmread(out / sid / name)
        with_phi = {e.keyword for e in ds.iterall() if any(t in str(e.value) for t in TEXT_TOKENS)}
        assert with_phi and with_phi <= set(PATIENT_STUDY_KEYWORDS), with_phi
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in source:
                assert ds[keyword].value == source[keyword].value, keyword
        for keyword in ("OtherPatientIDs", "PatientAddress", "InstitutionName", "OperatorsName", "StationName"):
            assert keyword not in ds, keyword
        assert not any(e.tag.is_private for e in ds)
        assert "PatientIdentityRemoved" not in ds
        # burned-in text outside the sector never reaches the outputs (the SR holds no pixels)
        if "PixelData" in ds:
            assert not ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)[(slice(None), *BURNED)].any()
        assert not iio.imread(out / sid / "frames" / "frame_000.png")[BURNED].any()


#: Table E.1-1 action of each attribute of the derived DICOM that comes from (or describes) the source
ACTIONS = {
    "PatientName": "Z", "PatientID": "Z/D", "PatientBirthDate": "Z", "PatientSex": "Z", "IssuerOfPatientID": "X",
    "PatientAge": "X", "PatientWeight": "X", "StudyDate": "Z", "StudyTime": "Z", "StudyID": "Z", "AccessionNumber": "Z",
    "StudyDescription": "X", "ReferringPhysicianName": "Z", "ContentDate": "Z/D", "ContentTime": "Z/D",
    "SeriesDescription": "X", "DerivationDescription": "X",
    "StudyInstanceUID": "U", "SeriesInstanceUID": "U", "SOPInstanceUID": "U", "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
}


def test_anonymize_applies_the_basic_profile_attribute_by_attribute(anonymized, plain, phi):
    out, r = anonymized
    assert_no_phi(out, r.stdout + r.stderr)  # prediction.dcm included
    source, original = pydicom.dcmread(phi / "study.dcm"), pydicom.dcmread(plain[0] / "a" / "prediction.dcm")
    ds = pydicom.dcmread(out / "a" / "prediction.dcm")
    for keyword, action in ACTIONS.items():
        before = original[keyword].value if keyword in original else None
        if action == "X":
            assert keyword not in ds, keyword
        elif action in ("Z", "Z/D"):
            assert ds[keyword].value in ("", None) or ds[keyword].value != before, keyword
            if action == "Z":
                assert ds[keyword].value in ("", None), keyword
        else:  # U: a new valid UID (not the source's, for those copied from it)
            assert UID(ds[keyword].value).is_valid and ds[keyword].value != getattr(source, keyword, None), keyword
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    ref = ds.SourceImageSequence[0]
    assert ref.ReferencedSOPClassUID == source.SOPClassUID and ref.ReferencedSOPInstanceUID != source.SOPInstanceUID
    assert ds.PatientIdentityRemoved == "YES" and "basic profile" in ds.DeidentificationMethod[0]
    code = ds.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert not any(e.tag.is_private for e in ds)
    for keyword in ("OtherPatientIDs", "PatientAddress", "InstitutionName", "OperatorsName", "StationName"):
        assert keyword not in ds
    assert dciodvfy_errors(out / "a" / "prediction.dcm") in ([], None)
    # the pixels are those of the same prediction without --anonymize
    assert ds.PixelData == original.PixelData
    # the report keeps the settings but no path, input hash or command line
    rep = json.loads((out / "a" / "report.json").read_text())
    assert rep["command"] is None and rep["input"]["sha256"] is None and rep["request"]["anonymize"] is True
    assert rep["request"]["segmentation_file"] is None and rep["request"]["steps"] == 1
    assert json.loads((plain[0] / "a" / "report.json").read_text())["request"]["anonymize"] is False


def test_anonymize_keeps_uids_consistent_within_a_run(anonymized, phi):
    out, _ = anonymized
    a, b = (pydicom.dcmread(out / s / "prediction.dcm") for s in "ab")
    source = pydicom.dcmread(phi / "study.dcm")
    # two predictions of the same source study: same new study and source references, new instances each
    assert a.StudyInstanceUID == b.StudyInstanceUID != source.StudyInstanceUID
    assert a.SourceImageSequence[0].ReferencedSOPInstanceUID == b.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_predict_anonymize_flag(phi, tiny_weights, tmp_path):
    r = echokdm_inprocess("predict", "--dicom", phi / "study.dcm", "--seg", phi / "labels.nii.gz", "--steps", 1,
                "--weights", tiny_weights, "--out", tmp_path / "out", "--anonymize")
    assert r.returncode == 0, r.stderr
    assert_no_phi(tmp_path / "out", r.stdout + r.stderr)
    assert pydicom.dcmread(tmp_path / "out" / "prediction.dcm").PatientIdentityRemoved == "YES"


def test_failing_phi_study_error_names_no_phi(phi, tiny_weights, tmp_path):
    r = echokdm_inprocess("predict", "--dicom", phi / "one_frame.dcm", "--steps", 1, "--weights", tiny_weights,
                "--out", tmp_path / "o")
    assert r.returncode == 2 and "at least 2 frames" in one_error_line(r)
    assert not (tmp_path / "o").exists()
    for token in TEXT_TOKENS:
        assert token not in r.stdout + r.stderr, token


# -- the whole table, in process ----------------------------------------------------------------------------------
_VALUES = {"PN": "PHI^NAME", "LO": "PHIVAL", "SH": "PHIVAL", "CS": "PHIVAL", "LT": "PHI TEXT", "ST": "PHI TEXT",
           "UT": "PHI TEXT", "UC": "PHI TEXT", "AE": "PHIAE", "AS": "053Y", "DS": "1.5", "IS": "7",
           "UR": "http://phi.example",
           "DA": "20190304", "TM": "101112", "DT": "20190304101112", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5,
           "FD": 1.5}


def _table_dataset() -> tuple[Dataset, dict[int, str]]:
    """A dataset holding every attribute of Table E.1-1 with a simple VR, set to a PHI-like value; tag -> action."""
    table = dicom_anonymization_database_selector(PROFILE_TABLE)
    ds, actions = Dataset(), {}
    for category in ("D_TAGS", "Z_TAGS", "X_TAGS", "U_TAGS", "Z_D_TAGS", "X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS"):
        for t in table[category]:
            tag = (t[0] << 16) | t[1] if len(t) == 2 else None
            if tag is None or tag >> 16 == 0x0002:
                continue
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            value = f"1.2.840.99999.{tag}" if vr == "UI" else _VALUES.get(vr)
            if value is not None:
                ds.add_new(tag, vr, value)
                actions[tag] = category.removesuffix("_TAGS").replace("_", "/")
    return ds, actions


def test_every_table_attribute_gets_its_action():
    ds, actions = _table_dataset()
    original = {tag: ds[tag].value for tag in actions}
    nested = Dataset()
    nested.PatientName = "PHI^NESTED"
    nested.ReferencedSOPInstanceUID = "1.2.840.99999.1"
    ds.SequenceOfUltrasoundRegions = Sequence([nested])  # a sequence the table keeps: its items are cleaned
    ds.private_block(0x0011, "PHI CREATOR", create=True).add_new(0x01, "LO", "PRIVATEPHI")
    anonymizer = Anonymizer(key=b"k" * 32)
    anonymizer(ds)
    assert len(actions) > 300
    for tag, action in actions.items():
        name = keyword_for_tag(tag)
        value = ds[tag].value if tag in ds else None
        if action == "X":
            assert tag not in ds, name
        elif action == "U":
            assert value == anonymizer.uid(original[tag]), name
        elif action == "D":
            assert value not in ("", None) and value != original[tag], name
            if dictionary_VR(tag) in DUMMY_TIMES:
                assert value == DUMMY_TIMES[dictionary_VR(tag)], name
        elif action == "Z":
            assert value in ("", None, 0, "0"), (name, value)
        else:  # X/Z, X/D, Z/D, X/Z/D: removed, emptied or replaced, never the original
            assert value != original[tag], name
    assert not any(e.tag.is_private for e in ds)
    item = ds.SequenceOfUltrasoundRegions[0]
    assert item.PatientName == "" and item.ReferencedSOPInstanceUID == anonymizer.uid("1.2.840.99999.1")
    assert ds.PatientIdentityRemoved == "YES"


def test_uid_mapping_is_keyed():
    a, b = Anonymizer(key=b"a" * 32), Anonymizer(key=b"b" * 32)
    uid = "1.2.840.99999.42"
    assert a.uid(uid) == Anonymizer(key=b"a" * 32).uid(uid) != b.uid(uid)
    assert UID(a.uid(uid)).is_valid and a.uid(uid) != uid
    assert Anonymizer().key != Anonymizer().key  # a random key per run by default
