"""``echokdm predict-batch``: manifest checks, failures recorded per study, resume, and sharding under torchrun."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from hardening_files import echokdm_inprocess, one_error_line

from echokdm.errors import InputError
from echokdm.predict import KDMPredictor
from echokdm.predict_batch import STATE_DIR, read_manifest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}


def write_manifest(path, rows, header=("study_id", "dicom", "seg", "target_ef")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def manifest(phantom_study, tmp_path):
    return write_manifest(tmp_path / "studies.csv", [
        ("a", phantom_study.dicom, phantom_study.labels_nii, ""),
        ("bad", tmp_path / "missing.dcm", "", ""),
        ("c", phantom_study.dicom, phantom_study.labels_nii, "40"),
    ])


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The weights folders ``KDMPredictor.from_weights`` loaded (in this process; it still loads them)."""
    load, seen = KDMPredictor.from_weights.__func__, []

    def counted(cls, weights=None, device="auto", precision="auto"):
        seen.append(weights.f2i.rsplit("/", 2)[-2])
        return load(cls, weights, device, precision)

    monkeypatch.setattr(KDMPredictor, "from_weights", classmethod(counted))
    return seen


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def batch(*args, launcher=()):
    """``echokdm predict-batch ARGS`` in this process, or in a child process started by ``launcher``."""
    if not launcher:
        return echokdm_inprocess("predict-batch", *args, timeout=600)
    cmd = [sys.executable, *launcher, "-m", "echokdm", "predict-batch", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)


@pytest.mark.slow
def test_batch_records_failures_and_resumes(manifest, tiny_weights, tmp_path, loads):
    out = tmp_path / "batch"
    r = batch("--manifest", manifest, "--out", out, "--steps", 1, "--k2f-steps", 1, "--no-ef-check", "--weights",
              tiny_weights)
    assert r.returncode == 1, r.stderr
    assert loads == [tiny_weights.name]  # once, for both studies
    request = json.loads((out / "a" / "report.json").read_text())["request"]
    assert (request["steps"], request["k2f_steps"], request["ef_check"]) == (1, 1, False)
    assert "2 predicted, 0 already done, 1 failed" in r.stdout
    summary = {row["study_id"]: row for row in read_csv(out / "summary.csv")}
    assert [summary[s]["status"] for s in ("a", "bad", "c")] == ["ok", "failed", "ok"]
    assert float(summary["c"]["ef_requested"]) == 40 and not summary["a"]["ef_requested"]
    assert 20 - 1e-3 <= float(summary["c"]["ef_target_keypoints"]) <= 60 + 1e-3  # solved for 40, plausible range
    assert summary["a"]["psnr"] and not summary["c"]["psnr"]  # a real target only in the --phase study
    assert not summary["a"]["ef_check_kept"] and not summary["c"]["ef_check_kept"]  # --no-ef-check; a target EF
    failures = read_csv(out / "failures.csv")
    assert [f["study_id"] for f in failures] == ["bad"] and "missing.dcm" in failures[0]["reason"]
    assert "\n" not in failures[0]["reason"]
    assert (out / "a" / "report.json").is_file() and not (out / "bad").exists()
    stamp = (out / "a" / "report.json").stat().st_mtime_ns
    r = batch("--manifest", manifest, "--out", out, "--steps", 1, "--weights", tiny_weights)
    assert r.returncode == 1 and "0 predicted, 2 already done, 1 failed" in r.stdout
    assert (out / "a" / "report.json").stat().st_mtime_ns == stamp
    assert loads == [tiny_weights.name]  # nothing left to predict: no models loaded


def test_a_batch_of_bad_inputs_fails_before_any_model_loads(phantom_study, tiny_weights, tmp_path, monkeypatch):
    def no_models(*args, **kwargs):
        raise AssertionError("models loaded for a batch of bad inputs")

    monkeypatch.setattr(KDMPredictor, "from_weights", no_models)
    (tmp_path / "junk.dcm").write_text("not a DICOM file")
    manifest = write_manifest(tmp_path / "studies.csv", [
        ("missing", tmp_path / "missing.dcm", "", ""),
        ("junk", tmp_path / "junk.dcm", "", ""),
        ("ef", phantom_study.dicom, phantom_study.labels_nii, "99"),
    ])
    out = tmp_path / "batch"
    r = batch("--manifest", manifest, "--out", out, "--steps", 1, "--weights", tiny_weights)
    assert r.returncode == 1 and "0 predicted, 0 already done, 3 failed" in r.stdout, r.stdout + r.stderr
    reasons = {f["study_id"]: f["reason"] for f in read_csv(out / "failures.csv")}
    assert "missing.dcm" in reasons["missing"] and "not a DICOM file" in reasons["junk"], reasons
    assert "between 5 and 90" in reasons["ef"], reasons


def test_weights_that_cannot_load_stop_the_batch(phantom_study, tiny_weights, tmp_path):
    """Loaded once the first study read its input (``bad`` fails before), a broken weights file is the batch's
    one error, not every study's failure."""
    manifest = write_manifest(tmp_path / "studies.csv", [
        ("bad", tmp_path / "missing.dcm", "", ""),
        ("a", phantom_study.dicom, phantom_study.labels_nii, ""),
        ("c", phantom_study.dicom, phantom_study.labels_nii, ""),
    ])
    broken = tmp_path / "broken_weights"
    shutil.copytree(tiny_weights, broken)
    (broken / "kdm_f2i.safetensors").write_bytes(b"not safetensors")
    out = tmp_path / "batch"
    r = batch("--manifest", manifest, "--out", out, "--steps", 1, "--weights", broken)
    assert r.returncode == 2 and "kdm_f2i.safetensors" in one_error_line(r), r.stderr
    assert (out / STATE_DIR / "bad.txt").is_file()  # the failure noted before the models loaded
    assert not (out / "a").exists() and not (out / "c").exists() and not (out / "summary.csv").exists()


@pytest.mark.slow
def test_batch_shards_over_torchrun_ranks(manifest, tiny_weights, tmp_path):
    out = tmp_path / "batch"
    r = batch("--manifest", manifest, "--out", out, "--steps", 1, "--weights", tiny_weights,
              launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"))
    assert r.returncode == 0, r.stderr  # a handled study failure: no rank fails, so torchrun shows no traceback
    assert "Traceback" not in r.stderr and "ChildFailedError" not in r.stderr, r.stderr
    summary = {row["study_id"]: row["status"] for row in read_csv(out / "summary.csv")}
    assert summary == {"a": "ok", "bad": "failed", "c": "ok"}
    # rank 0 takes studies 0 and 2, rank 1 study 1: one line each
    assert "2 predicted, 0 already done, 0 failed" in r.stdout and "0 predicted, 0 already done, 1 failed" in r.stdout


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([("a", "x.dcm"), ("a", "y.dcm")], ("study_id", "dicom"), "appears twice"),
        ([("../up", "x.dcm")], ("study_id", "dicom"), "safe folder name"),
        ([("a",)], ("study_id",), "lacks the column"),
        ([("a", "x.dcm", "1")], ("study_id", "dicom", "colour"), "unknown column"),
        ([], ("study_id", "dicom"), "no studies"),
    ],
)
def test_bad_manifests(tmp_path, rows, header, message):
    with pytest.raises(InputError, match=message):
        read_manifest(write_manifest(tmp_path / "m.csv", rows, header))


def test_manifest_paths_are_relative_to_it(tmp_path):
    (tmp_path / "sub").mkdir()
    rows = read_manifest(write_manifest(tmp_path / "sub" / "m.csv", [("s1", "loops/a.dcm", "seg/a.nii.gz", "")]))
    assert rows[0].dicom == str(tmp_path / "sub" / "loops" / "a.dcm")
    assert rows[0].options == {"seg": str(tmp_path / "sub" / "seg" / "a.nii.gz")}
