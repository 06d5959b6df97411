"""Determinism: the same input, seed and settings give bit-identical outputs on CPU in two separate processes
(a child process and this test process, which has run other tests before), and the report records what a rerun
needs (seed, steps, threads, versions, weight and input hashes).

Only what is new per run by design differs: the instance UIDs of ``prediction.dcm`` (every run writes a new
DICOM instance, as DICOM requires), its content time, the timings and the command line in the report; the
SEG and SR are new instances too (their pixels and measurements are the same).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hardening_files import echokdm, echokdm_inprocess
from io_files import sha256

from echokdm.io.sr import read_measurements

#: attributes of prediction.dcm that are new for every run (new instance, series and frames of reference)
PER_RUN = {"SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SynchronizationFrameOfReferenceUID",
           "ContentDate", "ContentTime", "MediaStorageSOPInstanceUID"}
PER_RUN_REPORT = ("timings_s", "command")


def run(study, weights: Path, out: Path, seed: int = 3, in_process: bool = False):
    r = (echokdm_inprocess if in_process else echokdm)(
        "predict",
        "--dicom",
        study.dicom,
        "--seg",
        study.labels_nii,
        "--frames",
        2,
        "--steps",
        2,
        "--seed",
        seed,
        "--weights",
        weights,
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def runs(phantom_study, tiny_weights, tmp_path_factory) -> dict[str, Path]:
    """Output folders of a (a child process) and b (this process, through the console entry point), both with
    seed 3, and of c with seed 4 (in this process: it only has to differ). Two processes: a fresh interpreter
    against one whose torch, RNGs and caches other tests have used, so state carried over would show."""
    root = tmp_path_factory.mktemp("determinism")
    return {"a": run(phantom_study, tiny_weights, root / "a"),
            "b": run(phantom_study, tiny_weights, root / "b", in_process=True),
            "c": run(phantom_study, tiny_weights, root / "c", seed=4, in_process=True)}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_processes_give_bit_identical_outputs(runs):
    a, b = files(runs["a"]), files(runs["b"])
    assert a.keys() == b.keys()
    special = {"prediction.dcm", "report.json", "report.csv", "segmentation_seg.dcm", "measurements_sr.dcm"}
    special.add(".echokdm")  # the folder's lock marker names its run: pid, start time, command
    differing = [name for name in a if name not in special and a[name] != b[name]]
    assert differing == []  # pictures, flow (.npy, .nii.gz), segmentation, keypoints: the same bytes
    sa, sb = (pydicom.dcmread(runs[n] / "segmentation_seg.dcm") for n in "ab")
    assert sa.PixelData == sb.PixelData and sa.SOPInstanceUID != sb.SOPInstanceUID
    assert read_measurements(runs["a"] / "measurements_sr.dcm") == read_measurements(runs["b"] / "measurements_sr.dcm")
    da, db = (pydicom.dcmread(runs[n] / "prediction.dcm") for n in "ab")
    assert da.PixelData == db.PixelData
    changed = {e.keyword for x, y in ((da, db), (da.file_meta, db.file_meta))
               for e in x if e.tag not in y or e.value != y[e.tag].value}
    # a new instance UID of another (even-padded) length changes the file meta group's length with it
    padded = [(len(d.file_meta.MediaStorageSOPInstanceUID) + 1) // 2 for d in (da, db)]
    per_run = PER_RUN | ({"FileMetaInformationGroupLength"} if padded[0] != padded[1] else set())
    assert "SOPInstanceUID" in changed and changed <= per_run, changed - per_run
    ra, rb = (json.loads(a["report.json"]), json.loads(b["report.json"]))
    assert {k: v for k, v in ra.items() if k not in PER_RUN_REPORT} == {
        k: v for k, v in rb.items() if k not in PER_RUN_REPORT}


def test_the_seed_changes_the_pixels(runs):
    """The test above would pass for a model that ignores its noise; here the seed must matter."""
    assert not np.array_equal(*(np.load(runs[n] / "flow.npy") for n in "ac"))


def test_report_records_what_a_rerun_needs(runs, phantom_study, tiny_weights):
    rep = json.loads((runs["a"] / "report.json").read_text())
    req = rep["request"]
    assert (req["seed"], req["steps"], req["frames"], req["threads"], req["device"]) == (3, 2, 2, 1, "cpu")
    assert rep["input"]["sha256"] == sha256(phantom_study.dicom)
    for pkg in ("echokdm", "torch", "diffusers", "monai", "numpy", "pydicom", "scipy"):
        assert rep["software"][pkg] not in ("", "not installed"), pkg
    for role, name in (("seg", "seg_a4c"), ("flow_vae", "kdm_flow_vae"), ("k2f", "kdm_k2f"), ("f2i", "kdm_f2i")):
        path = tiny_weights / f"{name}.safetensors"
        assert rep["weights"][role] == {"name": path.name, "sha256": sha256(path)}
    assert "--seed 3" in rep["command"] and "--steps 2" in rep["command"]
