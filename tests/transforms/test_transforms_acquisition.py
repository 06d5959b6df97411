"""Field of view, lossy coding and echo-like synthesis: the segmenter's transforms that span real scanners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echokdm.transforms.acquisition import (
    RandFieldOfView,
    RandFieldOfViewd,
    RandVideoCoding,
    RandVideoCodingd,
    fan_apex,
)
from echokdm.transforms.synth import RandEchoSynthesis, RandEchoSynthesisd


def _fan(h: int = 128, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A 70-degree fan from the top centre, and a label map with an LV (1) + wall (2) and an LA (3) below it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r, t = np.hypot(y + 1, x - (w - 1) / 2), np.arctan2(x - (w - 1) / 2, y + 1)
    fan = (r < h - 2) & (np.abs(t) < np.radians(35))
    lab = np.zeros((h, w), np.uint8)
    lab[((y - 55) / 34) ** 2 + ((x - 70) / 20) ** 2 < 1] = 2
    lab[((y - 55) / 30) ** 2 + ((x - 70) / 16) ** 2 < 1] = 1
    lab[((y - 100) / 14) ** 2 + ((x - 70) / 16) ** 2 < 1] = 3
    return fan, lab * fan


def _sample(seed: int = 0) -> dict[str, torch.Tensor]:
    fan, lab = _fan()
    rng = np.random.default_rng(seed)
    img = (0.2 + 0.5 * (lab == 2) + 0.1 * rng.random(fan.shape)) * fan
    return {
        "image": torch.tensor(img[None], dtype=torch.float32),
        "label": torch.tensor(lab[None], dtype=torch.float32),
        "mask": torch.tensor(fan[None], dtype=torch.float32),
    }


def test_fan_apex_is_the_top_centre_of_the_mask():
    fan, _ = _fan()
    assert fan_apex(fan) == pytest.approx((0.0, 63.5), abs=0.6)


@pytest.mark.parametrize("seed", range(6))
def test_view_zooms_into_the_fan_and_keeps_the_lv_whole(seed):
    d = _sample()
    t = RandFieldOfViewd(
        ["image", "label", "mask"], modes=("bilinear", "nearest", "nearest"), prob=1.0, zoom=(1.3, 1.6)
    )
    t.set_random_state(seed)
    out = t(d)
    side = out["image"].shape[-1]
    assert out["image"].shape == out["label"].shape == out["mask"].shape == (1, side, side)
    assert side in (112, 128, 160, 208, 256)
    lv = out["label"][0].numpy()
    assert (lv == 1).sum() > 0
    rows, cols = np.flatnonzero(np.isin(lv, (1, 2)).any(1)), np.flatnonzero(np.isin(lv, (1, 2)).any(0))
    assert rows[0] >= 1 and cols[0] >= 1 and rows[-1] <= side - 2 and cols[-1] <= side - 2  # wall and cavity in view
    m = out["mask"][0].numpy() > 0.5
    assert m[-1].any() or m[:, 0].any() or m[:, -1].any()  # zoomed in: the fan is cut by the canvas
    assert set(np.unique(lv)) <= {0.0, 1.0, 2.0, 3.0}  # labels resampled by nearest neighbour


def test_view_is_deterministic_by_seed_and_a_copy_when_it_does_not_fire():
    d = _sample()
    a = RandFieldOfViewd(["image", "label", "mask"], prob=1.0)
    b = RandFieldOfViewd(["image", "label", "mask"], prob=1.0)
    a.set_random_state(3), b.set_random_state(3)
    assert torch.equal(a(d)["image"], b(d)["image"])
    off = RandFieldOfView(prob=0.0)
    off.randomize(d["mask"][0].numpy() > 0.5)
    out = off(d["image"])
    assert out.dtype == torch.float32 and torch.equal(out, d["image"]) and out is not d["image"]


def test_video_coding_loses_more_at_low_quality_and_keeps_size():
    img = _sample()["image"]
    errors = []
    for q in (30, 95):
        t = RandVideoCoding(prob=1.0, quality=(q, q), source_scale=(1.0, 1.0))
        t.set_random_state(0)
        out = t(img)
        assert out.shape == img.shape and out.dtype == torch.float32
        errors.append(float((out - img).abs().mean()))
    assert errors[0] > errors[1] > 0
    d = RandVideoCodingd(["image"], prob=1.0, quality=(50, 50))
    d.set_random_state(1)
    assert d({"image": img})["image"].shape == img.shape


def test_synthesis_follows_the_labels_and_stays_in_the_fan():
    d = _sample()
    fan, lab = d["mask"][0].numpy() > 0.5, d["label"][0].numpy()
    darker = 0
    for seed in range(10):
        t = RandEchoSynthesis(prob=1.0, random_contrast_prob=0.0, extras_prob=0.0)
        t.set_random_state(seed)
        out = t(d["image"], d["label"], d["mask"])[0].numpy()
        assert out.shape == fan.shape and out.min() >= 0 and out.max() <= 1
        assert (out[~fan] == 0).all()
        darker += out[lab == 1].mean() < out[lab == 2].mean()
    assert darker >= 9  # echo-like contrast: blood darker than myocardium


def test_synthesis_is_seeded_and_leaves_the_frame_alone_when_it_does_not_fire():
    d = _sample()
    a, b = RandEchoSynthesisd("image", prob=1.0), RandEchoSynthesisd("image", prob=1.0)
    a.set_random_state(7), b.set_random_state(7)
    assert torch.equal(a(d)["image"], b(d)["image"])
    off = RandEchoSynthesisd("image", prob=0.0)
    assert torch.equal(off(d)["image"], d["image"])
