"""``echokdm train seg --data KIND:PATH --init --epochs``: the segmenter learns from EchoNet tracings (LV only,
partial-label loss) and CAMUS ground truth written by the phantom, and the run's folder is usable weights."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
import torch
from monai.losses import DiceCELoss

from echokdm.cli import main
from echokdm.errors import InputError
from echokdm.phantom.layouts import generate
from echokdm.train.sources import (
    LV,
    MYO,
    PartialLabelDiceCE,
    SourceConfig,
    area_error,
    parse_data_option,
    source_frames,
)

MODEL = {"size": 32, "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("byod")
    generate(root / "echonet", 3, "echonet", frames=8)
    table = pd.read_csv(root / "echonet" / "FileList.csv")
    table.loc[2, "Split"] = "VAL"
    table.to_csv(root / "echonet" / "FileList.csv", index=False)
    generate(root / "echonet_train", 2, "echonet", frames=8)
    generate(root / "camus", 2, "camus2019", size=96, frames=8)
    return root


def test_parse_data_option():
    assert parse_data_option("echonet:/data/EchoNet-Dynamic") == {"kind": "echonet", "path": "/data/EchoNet-Dynamic"}
    assert parse_data_option("phantom:20") == {"kind": "phantom", "path": "20"}
    for bad in ("echonet", "dicom:/x", "phantom:0", "camus:"):
        with pytest.raises(InputError):
            parse_data_option(bad)


def test_partial_label_loss_equals_dice_ce_on_full_labels_and_ignores_unlabelled_structures():
    torch.manual_seed(0)
    logits, label = torch.randn(3, 4, 16, 16), torch.randint(0, 4, (3, 1, 16, 16))
    full = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)
    loss = PartialLabelDiceCE()
    assert loss(logits, label, torch.zeros(3, dtype=torch.bool)) == full(logits, label)
    lv_only = (label == 1).long()
    partial = torch.ones(3, dtype=torch.bool)
    # moving probability among background, myocardium and LA changes nothing when only the LV is labelled
    shuffled = logits.clone()
    shuffled[:, [0, 2, 3]] = logits[:, [3, 0, 2]]
    assert loss(shuffled, lv_only, partial) == pytest.approx(loss(logits, lv_only, partial).item(), rel=1e-5)
    # while a full label would see it
    assert loss(shuffled, label, ~partial) != pytest.approx(loss(logits, label, ~partial).item(), rel=1e-3)
    # and a perfect LV prediction has a near-zero partial loss
    perfect = torch.where(lv_only.bool(), 20.0, -20.0).repeat(1, 4, 1, 1)
    perfect[:, [0, 2, 3]] *= -1
    assert loss(perfect, lv_only, partial) < 1e-3


def test_area_term_is_the_relative_lv_area_error_per_sample():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[0, 0, :4, :4] = 1  # 16 px of cavity; sample 1 has none and is left out
    logits = torch.full((2, 4, 8, 8), -20.0)
    logits[:, 0] = 20.0
    logits[0, 1, :4, :6] = 40.0  # predicts 24 px: 50 % too large
    assert area_error(logits, label, LV).item() == pytest.approx(0.5, rel=1e-4)
    assert area_error(logits[1:], label[1:], LV).item() == 0.0
    # a mask keeps only its samples: sample 0 (the only one with a cavity) left out -> no area error
    assert area_error(logits, label, LV, torch.tensor([False, True])).item() == 0.0
    assert area_error(logits, label, LV, torch.tensor([True, False])).item() == pytest.approx(0.5, rel=1e-4)
    full = torch.zeros(2, dtype=torch.bool)
    with_area = PartialLabelDiceCE(area_weight=2.0)(logits, label, full)
    assert with_area.item() == pytest.approx(PartialLabelDiceCE()(logits, label, full).item() + 1.0, rel=1e-4)


def test_wall_term_is_the_relative_myocardium_area_error_of_fully_labelled_samples():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[:, 0, :4, :4] = 2  # 16 px of wall in both samples
    logits = torch.full((2, 4, 8, 8), -20.0)
    logits[:, 0] = 20.0
    logits[:, 2, :2, :4] = 40.0  # predicts 8 px: half the wall read as something else
    assert area_error(logits, label, MYO).item() == pytest.approx(0.5, rel=1e-4)
    assert area_error(logits, label, LV).item() == 0.0  # no cavity in either sample
    full, partial = torch.zeros(2, dtype=torch.bool), torch.tensor([False, True])
    base = PartialLabelDiceCE()
    assert PartialLabelDiceCE(wall_area_weight=2.0)(logits, label, full).item() == pytest.approx(
        base(logits, label, full).item() + 1.0, rel=1e-4
    )
    # an LV-only (partial) label says nothing of the wall: its sample is left out of the wall term
    label[1, 0] = 0
    logits[1, 2] = 40.0
    assert PartialLabelDiceCE(wall_area_weight=2.0)(logits, label, partial).item() == pytest.approx(
        base(logits, label, partial).item() + 1.0, rel=1e-4
    )


def test_sources_serve_labelled_frames_with_their_partial_flag(folders):
    srcs = [
        SourceConfig("echonet", str(folders / "echonet_train")),
        SourceConfig("camus", str(folders / "camus"), "all", 2.0),
    ]
    ds = source_frames(srcs, "train", 32, 3, None, 0, {})
    assert len(ds) == 2 * 3 + 4 * 6  # 2 videos x 3; 2 patients x 2 views x 3 x weight 2
    first, last = ds[0], ds[len(ds) - 1]
    assert first["partial"] and not last["partial"]
    assert first["image"].shape == (1, 32, 32) and set(first["label"].unique().tolist()) == {0, 1}
    assert {1, 2, 3} <= set(last["label"].unique().tolist())
    only_train = [SourceConfig("echonet", str(folders / "echonet_train"))]
    assert source_frames(only_train, "val", 32, None, None, 0, {}) is None
    with pytest.raises(InputError, match="no segmentation labels"):
        source_frames([SourceConfig("cine-folder", str(folders))], "train", 32, 3, None, 0, {})


def test_fine_tune_from_a_run_on_echonet_and_camus_then_segment_with_it(folders, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "train": {"batch_size": 4, "lr": 0.003, "threads": 1},
        "model": MODEL, "data": {"frames_per_loop": 4},
    }))  # fmt: skip
    first = tmp_path / "first"
    args = ["train", "seg", "--config", str(cfg), "--data", f"echonet:{folders / 'echonet'}",
            "--data", f"camus:{folders / 'camus'}", "--epochs", "1"]  # fmt: skip
    assert main([*args, "--out", str(first)]) == 0
    with open(first / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and 0 <= float(rows[0]["val_dice_lv"]) <= 1  # validated on the EchoNet VAL video
    assert rows[0]["val_dice_myo"] == "nan"  # LV-only labels score no other structure
    saved = yaml.safe_load((first / "config.yaml").read_text())
    assert [s["kind"] for s in saved["data"]["sources"]] == ["echonet", "camus"]
    second = tmp_path / "second"
    assert main([*args, "--init", str(first / "model.safetensors"), "--out", str(second)]) == 0
    assert "trained seg for 1 epochs" in capsys.readouterr().out
    video = next((folders / "echonet" / "Videos").glob("*.avi"))
    assert main(["segment", "--dicom", str(video), "--weights", str(second), "--out", str(tmp_path / "seg")]) == 0


def test_a_fine_tune_without_config_takes_the_models_fine_tune_settings():
    from echokdm.train.registry import configure

    scratch, tuned = configure("seg", None), configure("seg", None, init="seg_a4c", epochs=5)
    assert (scratch.train.lr, scratch.augment.tissue_contrast_prob, scratch.data.frames_per_loop) == (1e-3, 0.7, 8)
    assert (tuned.train.lr, tuned.augment.tissue_contrast_prob, tuned.data.frames_per_loop) == (1e-3, 0.05, 32)
    assert (tuned.train.init_weights, tuned.train.epochs, tuned.augment.coding_prob) == ("seg_a4c", 5, 0.2)
    own = configure("seg", {"train": {"lr": 0.01}}, init="seg_a4c")  # a config of the user's is taken as it is
    assert (own.train.lr, own.augment.tissue_contrast_prob) == (0.01, 0.7)
    assert configure("f2i", None, init="kdm_f2i").train.init_weights == "kdm_f2i"  # no fine-tune settings: defaults
