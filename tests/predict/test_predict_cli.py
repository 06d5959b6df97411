"""``echokdm predict`` end to end in a subprocess: files, valid DICOM and report, no PHI, nothing written outside
--out (also with an unwritable HOME and its own TMPDIR), input untouched, and one clear line for every bad input,
found before any model loads (in this process; a few rows again in a child process) (determinism:
cli/test_determinism.py)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pydicom
import pytest
import torch
from broken_inputs import run_inprocess
from hardening_files import sealed_env
from io_files import dciodvfy_errors, sha256

from echokdm.io import read_cine, write_cine_dicom, write_label_sequence
from echokdm.predict import KDMPredictor

SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "predict_report.schema.json").read_text())
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}


def echokdm(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echokdm", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env or ENV)


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(phantom_study, tmp_path_factory):
    """The phantom study with patient fields filled in, in its own folder."""
    folder = tmp_path_factory.mktemp("inputs")
    ds = pydicom.dcmread(phantom_study.dicom)
    ds.PatientName, ds.PatientID = "Doe^Jane", "PID-4711"
    ds.save_as(folder / "study.dcm")
    shutil.copy(phantom_study.labels_nii, folder / "labels.nii.gz")
    return folder


@pytest.mark.slow
def test_predict_writes_a_valid_study(study, tiny_weights, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = tree(study)
    out = tmp_path / "out"
    args = ["predict", "--dicom", study / "study.dcm", "--seg", study / "labels.nii.gz", "--frames", 3, "--steps", 2,
            "--weights", tiny_weights, "--out", out]
    with sealed_env(tmp_path) as env:  # nothing in HOME or TMPDIR either
        r = echokdm(*args, cwd=cwd, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "predicted 3 frame(s)" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    jsonschema.validate(rep, SCHEMA)
    assert rep["command"] == shlex.join(["echokdm", *map(str, args)])
    assert rep["request"]["frames"] == 3 and len(rep["files"]["frames"]) == 3
    # a viewer-ready derived cine: valid, 3 frames, spacing and patient kept, new UIDs
    dcm = out / "prediction.dcm"
    assert dciodvfy_errors(dcm) in ([], None)
    ds, src = pydicom.dcmread(dcm), pydicom.dcmread(study / "study.dcm")
    assert int(ds.NumberOfFrames) == 3 and ds.PatientName == "Doe^Jane" and "DERIVED" in ds.ImageType
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    frames, meta = read_cine(dcm, blank_outside_sector=False)
    _, src_meta = read_cine(study / "study.dcm")
    assert frames.shape == (3, 128, 128) and meta["spacing_mm"] == src_meta["spacing_mm"]
    # no patient fields in what echokdm reports or prints
    for text in ((out / "report.json").read_text(), (out / "report.csv").read_text(), r.stdout, r.stderr):
        assert "Doe" not in text and "PID-4711" not in text
    # the input is untouched, nothing lands outside --out (working folder, HOME, TMPDIR), no temporary files are left
    assert tree(study) == before and not any(cwd.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "home", "out", "tmp"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def _single_frame(folder: Path, study_frames: np.ndarray) -> list:
    write_cine_dicom(folder / "one.dcm", study_frames[:1], frame_time_ms=20.0)
    return ["--dicom", folder / "one.dcm"]


def _two_frames(folder: Path, study_frames: np.ndarray, labels: np.ndarray) -> list:
    write_cine_dicom(folder / "two.dcm", study_frames[:2], frame_time_ms=20.0)
    write_label_sequence(folder / "two.nii.gz", labels[:2])
    return ["--dicom", folder / "two.dcm", "--seg", folder / "two.nii.gz"]


def _keypoints_30(folder: Path) -> Path:
    """A keypoint file of 30 keypoints per frame (predict takes 20 or 40)."""
    frame = {"frame": 9, "endo": [[10.0 + i, 20.0] for i in range(30)], "epi": []}
    doc = {"format": "echokdm-keypoints", "version": 1, "n_keypoints": 30, "frames": [frame]}
    return _write(folder / "kps30.json", json.dumps(doc))


BAD = {
    "not_dicom": (lambda f, s: ["--dicom", _write(f / "notes.dcm", "not an image")], "not a DICOM file"),
    "single_frame": (lambda f, s: _single_frame(f, s.frames), "at least 2 frames"),
    "two_frames": (lambda f, s: _two_frames(f, s.frames, s.labels), "no detectable heart beat"),
    "no_beat": (
        lambda f, s: ["--dicom", s.dicom, "--seg", _labels(f / "flat.nii.gz", np.repeat(s.labels[:1], 20, 0))],
        "no detectable heart beat",
    ),
    "seg_mismatch": (
        lambda f, s: ["--dicom", s.dicom, "--seg", _labels(f / "short.nii.gz", s.labels[:-3])],
        "must label every frame",
    ),
    "keypoints_count": (
        lambda f, s: ["--dicom", s.dicom, "--seg", s.labels_nii, "--keypoints", _keypoints_30(f)],
        "20 or 40",
    ),
    "keypoints_format": (
        lambda f, s: [
            "--dicom",
            s.dicom,
            "--seg",
            s.labels_nii,
            "--keypoints",
            _write(f / "k.json", '{"format": "x"}'),
        ],
        "not a valid echokdm keypoint file",
    ),
    "ef_high": (lambda f, s: ["--dicom", s.dicom, "--target-ef", 95], "between 5 and 90"),
    "ef_low": (lambda f, s: ["--dicom", s.dicom, "--target-ef", 2], "between 5 and 90"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _labels(path: Path, labels: np.ndarray) -> Path:
    write_label_sequence(path, labels)
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_before_any_model_loads(case, phantom_study, tiny_weights, tmp_path, monkeypatch):
    def no_models(*args, **kwargs):
        raise AssertionError("models loaded before the input was checked")

    monkeypatch.setattr(KDMPredictor, "from_weights", no_models)
    monkeypatch.setenv("ECHOKDM_PROGRESS", "0")
    make, expected = BAD[case]
    out = tmp_path / "out"
    status, stdout, stderr = run_inprocess(
        ["predict", *map(str, make(tmp_path, phantom_study)), "--steps", "1", "--weights", str(tiny_weights),
         "--out", str(out)]
    )
    assert status == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("echokdm: error:") and expected in lines[0], stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["not_dicom", "no_beat", "ef_high"])  # the reader, the labels, an option
def test_bad_input_in_a_process_is_one_line_and_leaves_nothing(case, phantom_study, tiny_weights, tmp_path):
    make, expected = BAD[case]
    args = make(tmp_path, phantom_study)
    out = tmp_path / "out"
    r = echokdm("predict", *args, "--steps", 1, "--weights", tiny_weights, "--out", out)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("echokdm: error:") and expected in lines[0], r.stderr
    assert not out.exists()


def test_foreign_output_folder_is_refused(phantom_study, tiny_weights, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = echokdm("predict", "--dicom", phantom_study.dicom, "--seg", phantom_study.labels_nii, "--steps", 1,
                "--weights", tiny_weights, "--out", out)
    assert r.returncode == 2 and "not made by echokdm" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_target_ef_says_what_it_solved_for(study, tiny_weights, tmp_path):
    """The summary gives the request beside the keypoint EF solved for, and warns when the plausible range
    could not reach it (as report.json's ef.calibration says)."""
    out = tmp_path / "ef"
    code, stdout, stderr = run_inprocess(["predict", "--dicom", str(study / "study.dcm"), "--seg",
                                          str(study / "labels.nii.gz"), "--target-ef", "35", "--steps", "1",
                                          "--weights", str(tiny_weights), "--out", str(out)])
    assert code == 0, stderr
    rep = json.loads((out / "report.json").read_text())
    jsonschema.validate(rep, SCHEMA)
    cal = rep["ef"]["calibration"]
    assert f"target keypoints {cal['keypoints_ef']:.1f}% (solved for the requested 35%)" in stdout
    assert ("warning: EF 35% needs target keypoints beyond" in stdout) == cal["bounded"]


def test_loop_without_es_after_its_ed_says_the_beats_are_neighbours(phantom_study, tiny_weights, tmp_path):
    """A loop that starts after ED and ends before the next ES (the bundled SonoSite sample as the stage-8
    segmenter reads it) predicts the previous beat's ES from the ED, and says so."""
    def roll(a: np.ndarray) -> np.ndarray:  # ES at frame 3, ED at 16, the loop ends mid-systole
        return np.roll(a, -6, axis=0)

    dcm = tmp_path / "rolled.dcm"
    _, meta = read_cine(phantom_study.dicom)
    write_cine_dicom(dcm, roll(phantom_study.frames), frame_time_ms=meta["frame_time_ms"],
                     spacing_mm=meta["spacing_mm"])
    out = tmp_path / "out"
    code, stdout, stderr = run_inprocess(["predict", "--dicom", str(dcm), "--seg",
                                          str(_labels(tmp_path / "rolled.nii.gz", roll(phantom_study.labels))),
                                          "--steps", "1", "--weights", str(tiny_weights), "--out", str(out)])
    assert code == 0, stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["phases"]["beat"] == [16, 3] and rep["source_frame"] == 16 and rep["target_frame"] == 3
    assert "note: the loop shows no ES after its ED (frame 16); ED and ES come from neighbouring beats (ES frame 3)" \
        in stdout
    manifest = tmp_path / "studies.csv"  # predict-batch: in summary.csv, and said once for the batch
    manifest.write_text(f"study_id,dicom,seg\nrolled,{dcm},{tmp_path / 'rolled.nii.gz'}\n")
    code, stdout, stderr = run_inprocess(["predict-batch", "--manifest", str(manifest), "--steps", "1", "--weights",
                                          str(tiny_weights), "--out", str(tmp_path / "batch")])
    assert code == 0, stderr
    (row,) = csv.DictReader((tmp_path / "batch" / "summary.csv").open())
    assert (row["ed_frame"], row["es_frame"]) == ("16", "3") and row["ef_check_kept"] == "first"
    assert "note: 1 study shows no ES after the ED; ED and ES come from neighbouring beats (es_frame < ed_frame in " \
        "summary.csv): rolled" in stdout


def test_a_prediction_whose_lv_misses_the_keypoints_is_flagged(tmp_path):
    """The bundled sample with the shipped models and --no-ef-check: the prediction measures EF 49 % for keypoints
    of 60 %, which predict flags (with the EF check, the second attempt measures 51.5 %: 8.3 points, not flagged);
    a --target-ef request is calibrated on the measured EF instead, and is not flagged so."""
    code, stdout, stderr = run_inprocess(["predict", "--sample", "--out", str(tmp_path / "checked")])
    assert code == 0, stderr
    checked = json.loads((tmp_path / "checked" / "report.json").read_text())
    jsonschema.validate(checked, SCHEMA)
    check = checked["ef_check"]
    assert check["kept"] == "second" and check["second"] < 10 < check["first"] and "points apart" not in stdout
    assert checked["ef"]["consistency"]["seg_vs_keypoints"] == pytest.approx(check["second"], abs=1e-6)
    assert (f"note: the first prediction's EF was {check['first']:.1f} points from the keypoints', so it was made "
            f"again with K2F held to the keypoints ({check['second']:.1f} points); the second is kept") in stdout
    code, stdout, stderr = run_inprocess(["predict", "--sample", "--no-ef-check", "--out", str(tmp_path / "es")])
    assert code == 0, stderr
    report = json.loads((tmp_path / "es" / "report.json").read_text())
    ef = report["ef"]
    assert report["ef_check"] is None and not report["request"]["ef_check"] and checked["request"]["ef_check"]
    assert ef["consistency"]["seg_vs_keypoints"] == pytest.approx(check["first"], abs=1e-6)
    assert "made again" not in stdout
    assert (f"warning: the prediction measures EF {ef['prediction']:.1f}% for target keypoints of "
            f"{ef['target_keypoints']:.1f}% ({ef['consistency']['seg_vs_keypoints']:.1f} points apart)") in stdout
    code, stdout, stderr = run_inprocess(["predict", "--sample", "--target-ef", "35", "--out", str(tmp_path / "ef")])
    assert code == 0, stderr
    report = json.loads((tmp_path / "ef" / "report.json").read_text())
    ef = report["ef"]
    assert ef["consistency"]["seg_vs_keypoints"] > 10 and "points apart" not in stdout
    # for a target EF the EF check measures against the request (here met by the calibration: no second attempt)
    assert report["ef_check"]["first"] == pytest.approx(abs(ef["prediction"] - 35), abs=1e-6)
    assert report["ef_check"]["first"] <= 5
    assert report["ef_check"]["second"] is None


def test_the_ef_check_skips_a_second_attempt_that_would_change_nothing(tmp_path):
    """``--phase ed`` on the bundled sample misses the keypoints' EF by 9.9 points, but K2F's flow already carries the
    cavity as well as the spline, so holding it to the keypoints would make the same frame: no second attempt, and
    the same pixels as --no-ef-check."""
    outs = {}
    for name, extra in (("checked", []), ("plain", ["--no-ef-check"])):
        code, stdout, stderr = run_inprocess(["predict", "--sample", "--phase", "ed", *extra,
                                              "--out", str(tmp_path / name)])
        assert code == 0, stderr
        outs[name] = (json.loads((tmp_path / name / "report.json").read_text()), stdout)
    (report, stdout), (plain, _) = outs["checked"], outs["plain"]
    jsonschema.validate(report, SCHEMA)
    check = report["ef_check"]
    assert check["unchanged"] and check["second"] is None and check["kept"] == "first" and check["first"] > 5
    assert "holding it to the keypoints would change nothing" in stdout and "made again" not in stdout
    assert np.array_equal(np.load(tmp_path / "checked" / "flow.npy"), np.load(tmp_path / "plain" / "flow.npy"))
    assert report["ef"]["prediction"] == plain["ef"]["prediction"]


@pytest.mark.parametrize("carried", [True, False])
def test_the_summary_and_report_say_what_the_cavity_check_did(study, tiny_weights, tmp_path, monkeypatch, carried):
    """report.json's ``cavity_check`` gives the tolerance and the weight K2F's correction and F2I's residual kept in
    the heart; below 1 a note line says so. Here K2F's flow carries the cavity as well as the spline, or not at all
    (every weight fails the check, and the last one, 0, is taken)."""
    import echokdm.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "cavity_overlap", lambda flow, src, tgt: np.ones(len(flow))
                        if carried or flow.abs().max() == 0 else np.zeros(len(flow)))
    monkeypatch.setattr(pipeline_module, "batch_keypoint_flow", lambda src, tgt, shape: torch.zeros(
        len(src), 2, *shape))  # the spline: no motion (so the check can tell it from the flow)
    out = tmp_path / "out"
    code, stdout, stderr = run_inprocess(["predict", "--dicom", str(study / "study.dcm"), "--seg",
                                          str(study / "labels.nii.gz"), "--steps", "1", "--weights",
                                          str(tiny_weights), "--out", str(out)])
    assert code == 0, stderr
    rep = json.loads((out / "report.json").read_text())
    jsonschema.validate(rep, SCHEMA)
    assert rep["cavity_check"] == {"tolerance": pipeline_module.CAVITY_TOLERANCE, "trust": 1.0 if carried else 0.0}
    assert ("weighted 0 inside the heart" in stdout) != carried

