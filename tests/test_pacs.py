"""``predict-batch --dicomweb`` against a real Orthanc (DICOMweb plugin) on loopback: a study with two cines and a
non-ultrasound instance, results stored back, a server that goes away mid-batch, a refused STOW, tokens."""

from __future__ import annotations

import csv
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from hardening_files import echokdm_inprocess
from io_files import pydicom_file
from orthanc import Orthanc

from echokdm.errors import InputError, RemoteError
from echokdm.io import read_segmentation
from echokdm.io.dicom_seg import read_segmentation_seg
from echokdm.io.sr import read_measurements
from echokdm.pacs import TOKEN_ENV, TOKEN_FILE_ENV, DicomWeb
from echokdm.predict_batch import predict_batch

TOKEN = "t0ken-for-tests"
#: (Modality, Series Description) of the series that --store adds to a study per cine
RESULT_SERIES = [("SEG", "echokdm segmentation"), ("SR", "echokdm measurements"), ("US", "echokdm prediction")]


@dataclass
class Archive:
    """The studies put into each Orthanc: study A (two phantom cines and a CT image), study B (one cine)."""

    study_a: str
    study_b: str
    files: list[Path]
    cines_a: list[str]  # SOP Instance UIDs of the cines of study A


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Archive:
    from echokdm.io import write_cine_dicom
    from echokdm.phantom import sample_params, simulate

    root = tmp_path_factory.mktemp("archive")
    study_a, study_b = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    files, cines_a = [], []
    for seed, study in ((0, study_a), (1, study_a), (2, study_b)):
        lp = simulate(sample_params(seed, size=96, frames=12, n_beats=1))
        path = root / f"cine_{seed}.dcm"
        write_cine_dicom(path, (lp.frames * 255).round().astype(np.uint8), frame_time_ms=lp.frame_time_ms,
                         spacing_mm=lp.spacing_mm)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.PatientID, ds.PatientName = study, "PAT-1", "Doe^Jane"
        ds.Manufacturer = "Phantom Scanner Co"
        ds.save_as(path)
        files.append(path)
        if study == study_a:
            cines_a.append(ds.SOPInstanceUID)
    ct = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ct.StudyInstanceUID, ct.PatientID = study_a, "PAT-1"
    ct.save_as(root / "ct.dcm")
    return Archive(study_a, study_b, [*files, root / "ct.dcm"], cines_a)


@pytest.fixture(scope="module")
def predictor():
    from echokdm.predict import KDMPredictor

    torch.set_num_threads(1)
    return KDMPredictor.from_weights(None, "cpu")  # the shipped weights: the built-in segmenter must find a beat


def start(root: Path, archive: Archive, **kwargs) -> Orthanc:
    server = Orthanc(root, **kwargs).start()
    for f in archive.files:
        server.upload(f)
    return server


def series_of(server: Orthanc, study: str) -> list[tuple[str, str]]:
    """(Modality, Series Description) of every series of a study, as QIDO-RS lists them."""
    return sorted((s["00080060"]["Value"][0], s.get("0008103E", {}).get("Value", [""])[0])
                  for s in server.get_json(f"studies/{study}/series"))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_study_with_two_cines_round_trip(archive, predictor, tmp_path):
    with start(tmp_path / "orthanc", archive, token=TOKEN) as server:
        before = series_of(server, archive.study_a)
        r = predict_batch(None, tmp_path / "out", dicomweb=DicomWeb(server.url, TOKEN), studies=[archive.study_a],
                          store=True, steps=1, predictor=predictor)
        assert sorted(r.done) == sorted(archive.cines_a) and not r.failed
        assert list(r.not_predicted.values()) == ["not ultrasound (Modality CT)"]
        listing = {row["sop_instance_uid"]: row["action"] for row in read_csv(tmp_path / "out" / "instances.csv")}
        assert sorted(a for a in listing.values()) == ["predict", "predict", "skip: not ultrasound (Modality CT)"]
        assert not (tmp_path / "out" / ".dicomweb").exists() or not any((tmp_path / "out" / ".dicomweb").iterdir())
        # the results went back into the same study as new series, one set per cine
        assert series_of(server, archive.study_a) == sorted(before + RESULT_SERIES * 2)
        client = DicomWeb(server.url, TOKEN).client
        for sop in archive.cines_a:
            folder = tmp_path / "out" / sop
            local = {
                f: pydicom.dcmread(folder / f)
                for f in ("prediction.dcm", "measurements_sr.dcm", "segmentation_seg.dcm")
            }
            remote = {f: client.retrieve_instance(archive.study_a, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                      for f, ds in local.items()}
            for f, ds in remote.items():
                ds.save_as(tmp_path / f"from_orthanc_{f}")
            assert {ds.StudyInstanceUID for ds in remote.values()} == {archive.study_a}
            prediction = remote["prediction.dcm"]
            assert prediction.PixelData == local["prediction.dcm"].PixelData
            assert prediction.SourceImageSequence[0].ReferencedSOPInstanceUID == sop
            # the SR read back from the archive holds the report's EFs; the SEG there is the NIfTI
            report = json.loads((folder / "report.json").read_text())
            got = read_measurements(tmp_path / "from_orthanc_measurements_sr.dcm")
            ed, es = report["phases"]["beat"]
            assert got[f"source loop: ED frame {ed}, ES frame {es}"][0][1] == round(report["ef"]["source_beat"], 1)
            assert got["prediction: EF of predicted frame 1"][0][1] == round(report["ef"]["prediction"], 1)
            nifti = read_segmentation(folder / "segmentation.nii.gz")
            seg = read_segmentation_seg(tmp_path / "from_orthanc_segmentation_seg.dcm", prediction)
            assert np.array_equal(seg, nifti.reshape(-1, *nifti.shape[-2:]))
        summary = read_csv(tmp_path / "out" / "summary.csv")
        assert [(s["status"], s["stored"]) for s in summary] == [("ok", "yes")] * 2
        # a later batch lists the stored predictions but never predicts them, and a rerun redoes nothing
        found = DicomWeb(server.url, TOKEN).find_instances([archive.study_a])
        reasons = sorted(str(i.skip_reason) for i in found)
        assert reasons.count("a prediction stored by echokdm") == 2 and reasons.count("None") == 2
        stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*/stored.json")}
        r = predict_batch(None, tmp_path / "out", dicomweb=DicomWeb(server.url, TOKEN), studies=[archive.study_a],
                          store=True, steps=1, predictor=predictor)
        assert not r.done and sorted(r.skipped) == sorted(archive.cines_a)
        assert stamps == {p: p.stat().st_mtime_ns for p in stamps} and len(stamps) == 2


def test_server_going_away_mid_batch_then_resume(archive, predictor, tmp_path):
    server = start(tmp_path / "orthanc", archive)
    out = tmp_path / "out"

    def pull_the_plug() -> None:  # as soon as the first cine is predicted
        while not list(out.glob("*/report.json")):
            time.sleep(0.02)
        server.stop(kill=True)

    watcher = threading.Thread(target=pull_the_plug, daemon=True)
    watcher.start()
    web = DicomWeb(server.url)
    # dicomweb-client retries a request 5 times, 2 + 4 + 8 + 16 s apart: the same 5 attempts, milliseconds apart
    web.client.set_http_retry_params(wait_exponential_multiplier=1)
    with pytest.raises(RemoteError, match="cannot be reached.*run the same command again to resume"):
        predict_batch(None, out, dicomweb=web, studies=[archive.study_a], store=True, steps=1, predictor=predictor)
    watcher.join(timeout=60)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/report.json")}
    assert finished and not all((out / s / "stored.json").is_file() for s in archive.cines_a)
    server.start()  # the same storage on a new port
    try:
        r = predict_batch(None, out, dicomweb=DicomWeb(server.url), studies=[archive.study_a], store=True, steps=1,
                          predictor=predictor)
        assert not r.failed and sorted(r.done + r.skipped) == sorted(archive.cines_a)
        assert set(r.skipped) == set(finished)  # each cine predicted once
        assert {
            p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/report.json") if p.parent.name in finished
        } == finished
        assert all((out / s / "stored.json").is_file() for s in archive.cines_a)
        after = series_of(server, archive.study_a)
        assert all(after.count(s) == 2 for s in RESULT_SERIES)  # each cine's results once
        assert not (out / ".dicomweb").exists() or not any((out / ".dicomweb").iterdir())
    finally:
        server.stop()




def test_refused_store_keeps_results_and_the_next_run_stores_them(archive, predictor, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    out = tmp_path / "out"
    server = start(tmp_path / "orthanc", archive, token=TOKEN, refuse_stow=True)
    try:  # the command line as a user runs it (in this process), the token from the file named in the environment
        monkeypatch.setenv("ECHOKDM_PROGRESS", "0")
        monkeypatch.setenv(TOKEN_FILE_ENV, str(token_file))
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        r = echokdm_inprocess("predict-batch", "--dicomweb", server.url, "--study", archive.study_b, "--out", out,
                              "--steps", 1, "--store", timeout=600)
    finally:
        server.stop()
    assert r.returncode == 1, r.stderr
    assert "1 predicted, 0 already done, 1 failed" in r.stdout
    assert "refused to store: HTTP 403 Forbidden" in r.stderr and "Traceback" not in r.stderr
    assert TOKEN not in r.stdout + r.stderr
    (folder,) = [p.parent for p in out.glob("*/report.json")]
    assert (folder / "prediction.dcm").is_file() and not (folder / "stored.json").exists()
    (row,) = read_csv(out / "summary.csv")
    assert (row["status"], row["stored"]) == ("not stored", "no") and "403" in row["reason"]
    assert [f["study_id"] for f in read_csv(out / "failures.csv")] == [folder.name]
    stamp = (folder / "prediction.dcm").stat().st_mtime_ns
    # the archive accepts results again: the next run stores what the first one kept, predicting nothing
    server = Orthanc(tmp_path / "orthanc", token=TOKEN).start()
    try:
        res = predict_batch(
            None,
            out,
            dicomweb=DicomWeb.from_environment(server.url, {TOKEN_FILE_ENV: str(token_file)}),
            studies=[archive.study_b],
            store=True,
            steps=1,
            predictor=predictor,
        )
        assert not res.done and res.skipped == [folder.name] and not res.failed
        assert (folder / "stored.json").is_file() and (folder / "prediction.dcm").stat().st_mtime_ns == stamp
        assert set(RESULT_SERIES) <= set(series_of(server, archive.study_b))
        assert read_csv(out / "failures.csv") == []
    finally:
        server.stop()


def test_token_is_required_and_never_on_the_command_line(archive, tmp_path, monkeypatch):
    with start(tmp_path / "orthanc", archive, token=TOKEN) as server:
        with pytest.raises(RemoteError, match="HTTP 403 Forbidden.*ECHOKDM_DICOMWEB_TOKEN"):
            predict_batch(None, tmp_path / "out", dicomweb=DicomWeb(server.url), steps=1)
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        found = DicomWeb.from_environment(server.url).find_instances()
        assert {i.study for i in found} == {archive.study_a, archive.study_b}
        assert DicomWeb(server.url, f"Bearer {TOKEN}").find_instances() == found
        with pytest.raises(InputError, match="is not on the DICOMweb server"):
            DicomWeb(server.url, TOKEN).find_instances([pydicom.uid.generate_uid()])
        with pytest.raises(InputError, match="not a valid Study Instance UID"):
            DicomWeb(server.url, TOKEN).find_instances(["1.2.abc"])
    with pytest.raises(InputError, match="not both"):
        DicomWeb.from_environment("http://127.0.0.1:1/dicom-web", {TOKEN_ENV: "a", TOKEN_FILE_ENV: "b"})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InputError, match="is empty"):
        DicomWeb.from_environment("http://127.0.0.1:1/dicom-web", {TOKEN_FILE_ENV: str(tmp_path / "empty")})
    with pytest.raises(InputError, match="must not carry credentials"):
        DicomWeb("http://user:pw@127.0.0.1:1/dicom-web")
    with pytest.raises(InputError, match="not an http"):
        DicomWeb("file:///etc/passwd")


def test_batch_options_that_do_not_go_together(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("study_id,dicom\na,a.dcm\n")
    server = DicomWeb("http://127.0.0.1:9/dicom-web")
    for kwargs, message in (({}, "either as a manifest"), ({"dicomweb": server, "manifest": manifest}, "one of them"),
                            ({"store": True, "manifest": manifest}, "need a DICOMweb"),
                            ({"dicomweb": server, "store": True, "anonymize": True}, "use one of them")):
        kwargs = {"manifest": None, **kwargs}
        with pytest.raises(InputError, match=message):
            predict_batch(kwargs.pop("manifest"), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_anonymized_batch_names_no_uid(archive, predictor, tmp_path):
    with start(tmp_path / "orthanc", archive) as server:
        r = predict_batch(None, tmp_path / "out", dicomweb=DicomWeb(server.url), studies=[archive.study_b], steps=1,
                          predictor=predictor, anonymize=True)
    (name,) = r.done
    assert name.startswith("cine-")
    text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "out").rglob("*") if p.suffix in (".csv", ".json"))
    assert archive.study_b not in text and "PAT-1" not in text
    ds = pydicom.dcmread(tmp_path / "out" / name / "prediction.dcm")
    assert ds.PatientIdentityRemoved == "YES" and ds.StudyInstanceUID != archive.study_b
