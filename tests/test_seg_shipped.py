"""The shipped segmenter weights and ``echokdm segment`` on phantom loops (truth known) and bad input."""

import json

import numpy as np
import pytest
import torch

from echokdm import weights
from echokdm.cli import main
from echokdm.io import write_cine_dicom
from echokdm.io.segmentation import read_segmentation
from echokdm.labels import camus_labels
from echokdm.models.seg import LVSegmenter, dice_per_class
from echokdm.phantom import sample_params, simulate


@pytest.fixture(scope="module")
def loop():
    return simulate(sample_params(2_000_003, size=160, frames=16))


@pytest.fixture(scope="module")
def segmenter():
    return LVSegmenter.from_pretrained()


def test_manifest_card_and_file_agree():
    entry = weights.manifest()["seg_a4c"]
    path = weights.WEIGHTS_DIR / entry["file"]
    assert weights.sha256_of(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
    assert entry["bytes"] < 8 * 2**20
    assert weights.card_is_current()
    w = weights.load("seg_a4c")
    assert w.task == "seg" and all(v.dtype == torch.float32 for v in w.state_dict.values() if v.is_floating_point())


def test_shipped_weights_segment_a_phantom_loop(loop, segmenter):
    out = segmenter(loop.frames, sector_mask=loop.sector_mask)
    truth = torch.from_numpy(camus_labels(loop.labels))
    d = {k: float(np.nanmean(v.numpy())) for k, v in dice_per_class(torch.from_numpy(out.labels), truth).items()}
    assert d["lv"] > 0.85 and d["myo"] > 0.6, d
    assert out.labels.shape == loop.labels.shape and out.labels.dtype == np.uint8
    assert (out.labels[:, ~loop.sector_mask] == 0).all()
    ed, es = loop.ed[0], loop.es[0]
    assert out.lv_area_px[ed] > 1.1 * out.lv_area_px[es]


def test_segment_cli_writes_segmentation_gif_and_report(tmp_path, loop, capsys):
    dcm = tmp_path / "loop.dcm"
    write_cine_dicom(
        dcm, (loop.frames * 255).round().astype(np.uint8), frame_time_ms=loop.frame_time_ms, spacing_mm=loop.spacing_mm
    )
    out = tmp_path / "seg"
    assert main(["segment", "--dicom", str(dcm), "--out", str(out)]) == 0
    assert "segmented 16 frames" in capsys.readouterr().out
    labels = read_segmentation(out / "segmentation.nii.gz")
    assert labels.shape == loop.labels.shape
    truth = camus_labels(loop.labels)
    lv = np.nanmean(dice_per_class(torch.from_numpy(labels), torch.from_numpy(truth))["lv"].numpy())
    assert lv > 0.8
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["metrics_error"] is None and summary["weights_sha256"] == weights.manifest()["seg_a4c"]["sha256"]
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["segmentation"] == "segmentation.nii.gz"
    assert abs(report["summary"]["ef_area_length"] - loop.ef) < 15
    import imageio.v3 as iio

    gif = iio.imread(out / "overlay.gif")
    assert gif.shape[0] == 16 and gif.shape[1:3] == loop.labels.shape[1:]
    for name in ("area_curve.png", "overlay_ed_es.png", "keypoints.json", "report.csv"):
        assert (out / name).is_file()


def test_segment_cli_refuses_a_single_frame_and_other_weights(tmp_path, loop, capsys):
    dcm = tmp_path / "one.dcm"
    write_cine_dicom(dcm, (loop.frames[:1] * 255).astype(np.uint8), frame_time_ms=20.0)
    assert main(["segment", "--dicom", str(dcm), "--out", str(tmp_path / "o")]) == 2
    assert "1 frame" in capsys.readouterr().err
    write_cine_dicom(dcm, (loop.frames[:3] * 255).astype(np.uint8), frame_time_ms=20.0)
    assert main(["segment", "--dicom", str(dcm), "--out", str(tmp_path / "o2"), "--weights", "nope"]) == 2
    assert "neither a shipped name" in capsys.readouterr().err
