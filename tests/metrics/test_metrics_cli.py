"""``echokdm metrics``: a good run writes every file; with the cine, in a child process (the real entry point), it
writes nothing outside --out; the other runs in this process through the console entry point; bad inputs fail with
one line."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk
from a4c_shapes import a4c_loop
from broken_inputs import run_inprocess
from hardening_files import sealed_env

from echokdm.io import write_cine_dicom
from echokdm.keypoints import load_keypoints

SPECS = Path(__file__).parents[2] / "data_specs"


def run(*args, child: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``echokdm metrics ARGS`` in this process (``child``: in a child process with this environment, in ``cwd``)."""
    argv = ["metrics", *map(str, args)]
    if child is not None:
        return subprocess.run([sys.executable, "-m", "echokdm", *argv], capture_output=True, text=True, env=child,
                              cwd=cwd)
    status, out, err = run_inprocess(argv)
    return subprocess.CompletedProcess(["echokdm", *argv], status, out, err)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics")
    lab = a4c_loop(25, 20.0, 0.0, shape=(128, 128), a=40, b=20, offset=10, wall=6, base=(64, 100))
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing((0.4, 0.4, 1.0))
    sitk.WriteImage(img, str(d / "seg.nii.gz"))
    one = sitk.GetImageFromArray(lab[0])
    sitk.WriteImage(one, str(d / "one.nii.gz"))
    holes = lab.copy()
    holes[4][holes[4] == 1] = 0
    sitk.WriteImage(sitk.GetImageFromArray(holes), str(d / "nolv.nii.gz"))
    pair = sitk.GetImageFromArray(lab[[7, 0]])  # a CAMUS-style ED/ES pair, ES first
    pair.SetSpacing((0.4, 0.4, 1.0))
    sitk.WriteImage(pair, str(d / "pair.nii.gz"))
    frames = np.where(lab == 2, 200, np.where(lab == 1, 20, 90)).astype(np.uint8)
    write_cine_dicom(d / "loop.dcm", frames, frame_time_ms=40.0, spacing_mm=(0.5, 0.5))
    write_cine_dicom(d / "short.dcm", frames[:10], frame_time_ms=40.0, spacing_mm=(0.5, 0.5))
    return d


def test_good_run_writes_everything(files, tmp_path):
    r = run("--seg", files / "seg.nii.gz", "--keypoints", "40", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "EF Simpson" in r.stdout
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, json.loads((SPECS / "metrics_report.schema.json").read_text()))
    assert report["ed_frames"] == [0, 20] and report["es_frames"] == [7]
    assert report["units"]["volume"] == "mL" and report["spacing_mm"] == pytest.approx([0.4, 0.4])
    assert report["summary"]["ef_simpson"] == pytest.approx(48.8, abs=2.0)
    assert report["heart_rate_bpm"] is None  # no frame time without a cine
    kp = json.loads((out / "keypoints.json").read_text())
    jsonschema.validate(kp, json.loads((SPECS / "keypoints.schema.json").read_text()))
    track = load_keypoints(out / "keypoints.csv")
    assert track.keypoints.shape == (25, 40, 2) and track.phases[0] == "ED"
    np.testing.assert_array_equal(track.keypoints, load_keypoints(out / "keypoints.json").keypoints)
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert len(rows) == 1 and float(rows[0]["ef_simpson_percent"]) == pytest.approx(report["summary"]["ef_simpson"])
    assert len(list(csv.DictReader(open(out / "frames.csv")))) == 25
    for png in ("area_curve.png", "overlay_ed_es.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_with_the_cine(files, tmp_path):
    with sealed_env(tmp_path) as env:  # nothing in HOME or TMPDIR
        r = run("--seg", files / "seg.nii.gz", "--dicom", files / "loop.dcm", "--out", tmp_path / "out", child=env,
                cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out", "tmp"]  # nothing beside --out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["frame_time_ms"] == pytest.approx(40.0) and report["heart_rate_bpm"] == pytest.approx(75.0)
    assert report["spacing_mm"] == pytest.approx([0.5, 0.5]) and "cine" in report["spacing_source"]
    assert report["n_keypoints"] == 20


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seg", "{d}/seg.nii.gz", "--dicom", "{d}/short.dcm"], "must match frame for frame"),
        (["--seg", "{d}/nolv.nii.gz"], "no LV cavity (label 1) in frame(s) 4"),
        (["--seg", "{d}/one.nii.gz"], "single frame"),
        (["--seg", "{d}/missing.nii.gz"], "no such file"),
        (["--seg", "{d}/loop.dcm"], "not a segmentation"),
    ],
)
def test_bad_inputs_fail_with_one_line(files, tmp_path, args, message):
    r = run(*[a.format(d=files) for a in args], "--out", tmp_path / "out")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("echokdm: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_ed_es_pair_and_biplane(files, tmp_path):
    r = run("--seg", files / "pair.nii.gz", "--seg-2ch", files / "pair.nii.gz", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, json.loads((SPECS / "metrics_report.schema.json").read_text()))
    assert report["ed_frames"] == [1] and report["es_frames"] == [0]
    assert report["biplane"]["ef_biplane"] == pytest.approx(report["summary"]["ef_simpson"], rel=1e-9)
    assert "EF biplane Simpson" in r.stdout
    r = run("--seg", files / "seg.nii.gz", "--ed-es", "0", "7", "--out", tmp_path / "given")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "given" / "report.json").read_text())["es_frames"] == [7]
