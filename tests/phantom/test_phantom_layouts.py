"""``echokdm phantom`` in each layout, bad parameters, and the CAMUS / EchoNet-Dynamic loaders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from echokdm.cli import main
from echokdm.data.camus import camus_dataset, read_camus_cfg
from echokdm.data.echonet import echonet_datalist, echonet_dataset
from echokdm.io import load_cine, read_segmentation
from echokdm.phantom import sample_params, simulate
from echokdm.phantom.layouts import echonet_name, layout_overrides, manifest_rows

ARGS = ["--n", "2", "--frames", "16", "--seed", "5"]
SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "phantom.schema.json").read_text())


def _run(tmp_path, layout, *extra):
    out = tmp_path / layout
    assert main(["phantom", "--out", str(out), "--layout", layout, *ARGS, *extra]) == 0
    return out


def _loop(seed, layout, size):
    return simulate(sample_params(seed, size=size, frames=16, **layout_overrides(layout)))


def test_dicom_layout_round_trips(tmp_path):
    out = _run(tmp_path, "dicom", "--size", "96")
    rows = manifest_rows(out)
    assert [r["name"] for r in rows] == ["phantom_0000005", "phantom_0000006"]
    loop = _loop(5, "dicom", 96)
    img = load_cine(out / "phantom_0000005.dcm", blank_outside_sector=False)
    assert tuple(img.shape) == (1, 16, 96, 96)
    assert img.meta["spacing_mm"] == pytest.approx(loop.spacing_mm, rel=1e-12)
    assert img.meta["frame_time_ms"] == pytest.approx(loop.frame_time_ms, rel=1e-5)
    np.testing.assert_allclose(img[0].numpy(), np.round(loop.frames * 255) / 255, atol=1e-6)
    np.testing.assert_array_equal(read_segmentation(out / "phantom_0000005_label.nii.gz"), loop.labels)
    ddf = np.load(out / "phantom_0000005_ddf.npz")
    np.testing.assert_allclose(ddf["ddf_from_ed"], loop.ddf_from_ed, atol=0.05)
    side = json.loads((out / "phantom_0000005.json").read_text())
    jsonschema.validate(side, SCHEMA)
    assert side["ed"] == loop.ed and side["params"]["seed"] == 5
    assert float(rows[0]["ef"]) == pytest.approx(loop.ef, abs=1e-3)


def test_camus_layout_and_loader(tmp_path):
    out = _run(tmp_path, "camus", "--size", "96", "--split", "val")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["database_split", "patient0006", "patient0007"]
    assert (out / "database_split" / "subgroup_validation.txt").read_text() == "patient0006\npatient0007\n"
    cfg = read_camus_cfg(out / "patient0006" / "Info_4CH.cfg")
    assert {"ED", "ES", "NbFrame", "Sex", "Age", "ImageQuality", "EF", "FrameRate", "LVedv", "LVesv"} <= set(cfg)
    assert cfg["ED"] == 1 and cfg["ES"] == cfg["NbFrame"]
    items = camus_dataset(out)
    item = items[0]
    loop = simulate(sample_params(1_000_005, size=96, frames=16, ui=False))
    ed, es = loop.ed[0], loop.es[0]
    assert tuple(item["image"].shape) == (1, es - ed + 1, 96, 96)
    assert item["ed"] == 0 and item["es"] == es - ed
    expected = np.where(loop.labels[ed : es + 1] <= 3, loop.labels[ed : es + 1], 0)
    np.testing.assert_array_equal(item["label"], expected)
    np.testing.assert_array_equal(item["label_es"], expected[-1])
    jsonschema.validate(json.loads((out / "patient0006" / "patient0006_4CH_phantom.json").read_text()), SCHEMA)
    assert item["ef"] == pytest.approx(loop.ef, abs=0.01)
    assert item["spacing"] == pytest.approx(loop.spacing_mm, rel=1e-6)
    assert item["image"].meta["frame_time_ms"] == pytest.approx(loop.frame_time_ms, rel=1e-3)


def test_echonet_layout_and_loader(tmp_path):
    out = _run(tmp_path, "echonet", "--split", "test")
    with open(out / "FileList.csv", newline="") as f:
        files = list(csv.DictReader(f))
    assert [r["FileName"] for r in files] == [echonet_name(2_000_005), echonet_name(2_000_006)]
    assert all(r["FrameHeight"] == r["FrameWidth"] == "112" and r["Split"] == "TEST" for r in files)
    with open(out / "VolumeTracings.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    items = echonet_datalist(out, split="TEST")
    assert len(items) == 2 and echonet_datalist(out, split="TRAIN") == []
    item = echonet_dataset(out)[0]
    loop = _loop(2_000_005, "echonet", 112)
    assert tuple(item["image"].shape) == (1, 16, 112, 112)
    assert (item["ed"], item["es"]) == (loop.ed[0], loop.es[0])
    assert item["trace_ed"].shape == (21, 4)
    for key, t in (("label_ed", loop.ed[0]), ("label_es", loop.es[0])):
        a, b = item[key].astype(bool), loop.labels[t] == 1
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9
    assert item["ef"] == pytest.approx(loop.ef, abs=0.01)
    # MJPG is lossy, but the video is the loop
    err = np.abs(item["image"][0].numpy() - loop.frames).mean()
    assert err < 0.03


@pytest.mark.parametrize(
    "args, words",
    [
        (["--ef-min", "2"], "5-90"),
        (["--ef-max", "95"], "5-90"),
        (["--n", "0"], "n=0"),
        (["--size", "40"], "too small"),
        (["--layout", "nifti"], "unknown layout"),
        (["--split", "dev"], "unknown split"),
        (["--layout", "echonet", "--size", "128"], "112x112"),
    ],
)
def test_bad_parameters_fail_cleanly_and_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "bad"
    assert main(["phantom", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not out.exists()


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path, capsys):
    out = _run(tmp_path, "dicom", "--size", "96", "--no-ddf")
    assert not list(out.glob("*_ddf.npz"))
    assert main(["phantom", "--out", str(out), "--layout", "dicom", *ARGS, "--size", "96"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["phantom", "--out", str(out), "--layout", "dicom", *ARGS, "--size", "96", "--overwrite"]) == 0
