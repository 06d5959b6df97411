"""The MONAI bundle ``pipelines/bundle/echokdm_a4c``: ``python -m monai.bundle run`` gives the pixels of
``echokdm predict``; ``verify_metadata`` and ``verify_net_in_out`` pass with no network; the study list."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pydicom
import pytest
import torch
from hardening_files import echokdm_inprocess
from io_files import sha256

from echokdm.bundle import datalist
from echokdm.data import sample_path
from echokdm.errors import InputError

ROOT = Path(__file__).parents[1]
BUNDLE = ROOT / "pipelines" / "bundle" / "echokdm_a4c"
META, CONFIG = BUNDLE / "configs" / "metadata.json", BUNDLE / "configs" / "inference.json"
SCHEMA = ROOT / "pipelines" / "bundle" / "schema" / "meta_schema_20240725.json"
#: md5 of the schema file that metadata.json's "schema" URL serves (checked by verify_metadata)
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}
STEPS, K2F_STEPS, SEED = 2, 1, 3  # K2F_STEPS other than the default: the bundle passes it on


def run(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *map(str, args)], check=False, capture_output=True, text=True, timeout=300,
                       cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the bundle tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_bundle_run_gives_the_cli_pixels(phantom_study, tiny_weights, tmp_path):
    """On the tiny weights (the bundle's ``weights_dir``, the same code path): the shipped weights in the bundle
    are loaded by ``verify_net_in_out`` and the failed-study test below."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(sample_path(), inputs / "sonosite.dcm")
    shutil.copy(phantom_study.dicom, inputs / "phantom.dcm")
    (inputs / "notes.txt").write_text("not a DICOM file; the bundle skips it\n")
    out = tmp_path / "bundle_out"
    r = run("-m", "monai.bundle", "run", "--bundle_root", BUNDLE, "--config_file", CONFIG, "--input_dir", inputs,
            "--output_dir", out, "--weights_dir", tiny_weights, "--steps", STEPS, "--k2f_steps", K2F_STEPS,
            "--ef_check", False, "--seed", SEED)
    assert "phantom: frame" in r.stdout and "sonosite: frame" in r.stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "failures.csv",
        "phantom",
        "sonosite",
    ]
    assert (out / "failures.csv").read_text().splitlines() == ["study,image,reason"]
    for study in ("phantom", "sonosite"):  # the reference: echokdm predict, in this process (no imports to pay)
        cli = tmp_path / f"cli_{study}"
        r = echokdm_inprocess("predict", "--dicom", inputs / f"{study}.dcm", "--phase", "es", "--seed", SEED,
                              "--steps", STEPS, "--k2f-steps", K2F_STEPS, "--no-ef-check", "--weights", tiny_weights,
                              "--out", cli)
        assert r.returncode == 0, r.stderr
        got, want = out / study, cli
        assert np.array_equal(pydicom.dcmread(got / "prediction.dcm").pixel_array,
                              pydicom.dcmread(want / "prediction.dcm").pixel_array)
        assert np.array_equal(
            iio.imread(got / "frames" / "frame_000.png"), iio.imread(want / "frames" / "frame_000.png")
        )
        assert np.array_equal(np.load(got / "flow.npy"), np.load(want / "flow.npy"))
        rep, ref = (json.loads((d / "report.json").read_text()) for d in (got, want))
        assert rep["request"] == ref["request"] and rep["request"]["seed"] == SEED
        assert (rep["request"]["steps"], rep["request"]["k2f_steps"], rep["request"]["ef_check"]) == (
            STEPS, K2F_STEPS, False)
        assert (rep["source_frame"], rep["target_frame"], rep["ef"]) == (
            ref["source_frame"],
            ref["target_frame"],
            ref["ef"],
        )
        assert rep["image_metrics"] == ref["image_metrics"]
        assert "monai.bundle" in rep["command"] and rep["weights"] == ref["weights"]
        assert rep["weights"]["f2i"]["sha256"] == sha256(tiny_weights / "kdm_f2i.safetensors")


def test_datalist(tmp_path):
    assert datalist() == [{"image": str(sample_path()), "study": sample_path().stem}]
    shutil.copy(sample_path(), tmp_path / "b.dcm")
    shutil.copy(sample_path(), tmp_path / "a")
    (tmp_path / "c.dcm").write_text("a text file named .dcm")
    assert [d["study"] for d in datalist(tmp_path)] == ["a", "b"]
    shutil.copy(sample_path(), tmp_path / "a.DCM")
    with pytest.raises(InputError, match="would both be written"):
        datalist(tmp_path)
    with pytest.raises(InputError, match="holds no DICOM file"):
        datalist(_empty(tmp_path / "empty"))
    with pytest.raises(InputError, match="does not exist"):
        datalist(tmp_path / "missing")


def _empty(folder: Path) -> Path:
    folder.mkdir()
    (folder / "readme.txt").write_text("no DICOM here")
    return folder


def test_verify_metadata_offline(offline, tmp_path):
    from monai.bundle import verify_metadata

    assert json.loads(META.read_text())["schema"].endswith("/" + SCHEMA.name)
    verify_metadata(meta_file=str(META), filepath=str(SCHEMA), hash_val=SCHEMA_MD5)
    meta = json.loads(META.read_text())
    del meta["numpy_version"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="numpy_version"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(SCHEMA), hash_val=SCHEMA_MD5)


def _keypoints(size: int) -> torch.Tensor:
    """(1, 2, 40, 2) source and target keypoints of a bullet-shaped ventricle (apex up) that contracts."""
    t = np.linspace(0, np.pi, 20)

    def contour(w: float, h: float) -> np.ndarray:
        cx, cy = size / 2, size * 0.8
        return np.concatenate(
            [np.stack([cx - r * np.cos(t), cy - q * np.sin(t)], 1) for r, q in ((w, h), (w + 6, h + 6))]
        )

    return torch.tensor(np.stack([contour(18, 40), contour(14, 34)])[None], dtype=torch.float32)


def test_verify_net_in_out_offline(offline):
    from monai.bundle import verify_net_in_out

    size = json.loads(META.read_text())["network_data_format"]["inputs"]["image"]["spatial_shape"][0]
    args = {"net_id": "network_def", "meta_file": str(META), "config_file": str(CONFIG), "device": "cpu",
            "extra_forward_args": {"keypoints": _keypoints(size), "num_inference_steps": STEPS}}
    verify_net_in_out(**args)
    with pytest.raises(ValueError, match="output channel number"):
        verify_net_in_out(**args, **{"_meta_#network_data_format#outputs#pred#num_channels": 3})


def test_failed_study_is_listed_and_the_others_go_on(phantom_study, tmp_path):
    from monai.data import DataLoader, Dataset
    from monai.data.utils import no_collation

    from echokdm.bundle import KDMInferer, KDMNetwork, PredictionSaver, run_inference
    from echokdm.predict import KDMPredictor, PredictOptions
    from echokdm.transforms import LoadCineLoopd

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(phantom_study.dicom, inputs / "good.dcm")
    (inputs / "cut.dcm").write_bytes(phantom_study.dicom.read_bytes()[:2000])
    data = datalist(inputs)
    loader = DataLoader(Dataset(data, LoadCineLoopd("image")), batch_size=1, collate_fn=no_collation)
    saver = PredictionSaver(tmp_path / "out")
    with pytest.raises(SystemExit, match="1 of 2 studies failed"):
        run_inference(loader, KDMNetwork(KDMPredictor.from_weights()), KDMInferer(PredictOptions(steps=1)), saver)
    assert (tmp_path / "out" / "good" / "report.json").is_file()
    assert not (tmp_path / "out" / "cut").exists()
    failures = (tmp_path / "out" / "failures.csv").read_text().splitlines()
    assert failures[0] == "study,image,reason" and len(failures) == 2
    assert failures[1].startswith(f"cut,{inputs / 'cut.dcm'},") and "Traceback" not in failures[1]
