"""Segmenter building blocks: grid fitting, equalisation, temporal smoothing, clean-up, jitter, Dice."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from echokdm.errors import InputError
from echokdm.grid import SectorFit
from echokdm.models.seg import (
    area_jitter,
    dice_per_class,
    equalize_frames,
    largest_components,
    smooth_in_time,
    temporal_kernel,
)


@pytest.fixture(scope="module")
def tiny_segmenter():
    from echokdm.models.seg import LVSegmenter, SegModelConfig, build_network

    torch.manual_seed(0)
    cfg = SegModelConfig(size=32, channels=(4, 8), strides=(2,), num_res_units=0)
    return LVSegmenter(build_network(cfg), cfg)


def _fan(h=90, w=120):
    y, x = np.mgrid[0:h, 0:w]
    return (np.abs(np.arctan2(x - 60, y + 1 - 10)) < 0.6) & (y >= 10) & (np.hypot(x - 60, y - 9) < 75)


def test_sector_fit_round_trip_keeps_apex_on_top_and_structures_in_place():
    mask = _fan()
    fit = SectorFit.from_mask(mask, 64)
    x0, y0, x1, y1 = fit.box
    assert (y0, y1) == (10, int(np.flatnonzero(mask.any(1))[-1]))
    blob = np.zeros(mask.shape, np.float32)
    blob[40:60, 50:70] = 1
    work = fit.to_work(torch.from_numpy(blob)[None, None])
    assert work.shape == (1, 1, 64, 64)
    assert fit.to_work(torch.from_numpy(mask.astype(np.float32))[None, None])[0, 0, 0].sum() > 0  # apex row
    back = fit.to_source(work)[0, 0].numpy() > 0.5
    assert back.shape == mask.shape
    assert (back & (blob > 0)).sum() / (blob > 0).sum() > 0.9 and back.sum() / blob.sum() < 1.2


def test_sector_fit_rejects_a_bad_mask():
    with pytest.raises(InputError, match=r"\(H, W\)"):
        SectorFit.from_mask(np.ones((2, 3, 4), bool), 32)


def test_equalisation_is_invariant_to_gain_and_gamma():
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.random((2, 1, 32, 32)).astype(np.float32))
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[4:28, 4:28] = True
    a = equalize_frames(img, mask)
    b = equalize_frames(0.5 * img**2, mask)
    assert torch.allclose(a, b, atol=1e-6)
    assert a[:, :, ~mask].abs().max() == 0
    assert 0.45 < a[:, :, mask].mean() < 0.55
    # ties share their mid rank, each frame ranked within its own sector; an empty sector gives zeros
    two = torch.zeros(2, 1, 4, 4)
    two[0, 0, :, 2:] = 1.0
    masks = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    masks[1] = False
    out = equalize_frames(two, masks)
    assert torch.equal(out[0, 0, :, :2], torch.full((4, 2), 0.25))
    assert torch.equal(out[0, 0, :, 2:], torch.full((4, 2), 0.75))
    assert out[1].abs().max() == 0


def test_temporal_smoothing_and_jitter():
    t = torch.arange(10, dtype=torch.float32)
    probs = (t % 2).reshape(10, 1, 1, 1).repeat(1, 2, 3, 3)
    smooth = smooth_in_time(probs, (0.25, 0.5, 0.25))
    assert torch.allclose(smooth[1:-1], torch.full_like(smooth[1:-1], 0.5))
    assert torch.equal(smooth_in_time(probs, (1.0,)), probs)
    with pytest.raises(InputError, match="odd"):
        smooth_in_time(probs, (0.5, 0.5))
    beat = 100 + 20 * np.sin(np.linspace(0, 2 * np.pi, 30))
    flicker = beat + 10 * (np.arange(30) % 2)
    assert area_jitter(beat) < 0.01 < area_jitter(flicker)


@pytest.mark.parametrize(
    "frame_time,expected",
    [(None, (0.25, 0.5, 0.25)), (125.0, (1.0,)), (100.0, (1.0,)), (33.3, None), (10.0, None)],
)
def test_temporal_kernel_is_set_in_milliseconds(frame_time, expected):
    k = temporal_kernel(frame_time)
    assert sum(k) == pytest.approx(1.0) and len(k) % 2 == 1
    if expected is not None:
        assert k == pytest.approx(expected)
    elif frame_time == 33.3:  # a 30 frames/s loop: neighbours weigh a little
        assert len(k) == 3 and 0.02 < k[0] < 0.15
    else:  # 100 frames/s: the same 15 ms spans several frames
        assert len(k) >= 5 and k[len(k) // 2] < 0.5
    assert temporal_kernel(33.3, sigma_ms=0.0) == (1.0,)


def test_a_clip_at_8_frames_per_second_is_not_blended(tiny_segmenter):
    """At 125 ms per frame ED and ES are neighbours: smoothing in frames would mix them, smoothing in ms does not."""
    rng = np.random.default_rng(0)
    frames = rng.random((6, 64, 64)).astype(np.float32)
    out = tiny_segmenter(frames, sector_mask=np.ones((64, 64), bool), frame_time_ms=125.0)
    assert out.temporal_kernel == (1.0,)
    single = [tiny_segmenter(f[None], sector_mask=np.ones((64, 64), bool), frame_time_ms=125.0).probabilities[0]
              for f in frames]
    assert torch.allclose(out.probabilities, torch.stack(single), atol=1e-5)
    blended = tiny_segmenter(frames, sector_mask=np.ones((64, 64), bool))  # no frame time: the untimed kernel
    assert blended.temporal_kernel == (0.25, 0.5, 0.25) and not torch.allclose(blended.probabilities, out.probabilities)


def test_largest_components_keeps_one_filled_cavity():
    lab = np.zeros((40, 40), np.uint8)
    lab[5:25, 5:25] = 1
    lab[12:15, 12:15] = 0  # hole
    lab[30:33, 30:33] = 1  # stray island
    lab[2:4, 30:38] = 3
    lab[30:38, 2:4] = 3
    out = largest_components(lab)
    assert (out == 1).sum() == 400
    assert (out == 3).sum() == 16


def _largest_components_per_frame(labels):
    """The straightforward reference: per frame and structure, scipy's 2-D labels, np.argmax, scipy's hole fill."""
    out = np.zeros_like(labels)
    for t, frame in enumerate(labels):
        for value in (2, 3, 1):
            comp, n = ndimage.label(frame == value)
            if n:
                keep = comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1
                out[t][ndimage.binary_fill_holes(keep) if value == 1 else keep] = value
    return out


def _random_labels(rng, t, h, w):
    """Label maps with many components, equally large ones (ties), rings with holes (holding other labels too)
    and frames without some or all structures."""
    labels = (rng.random((t, h, w)) < rng.uniform(0.05, 0.6)) * rng.integers(0, 4, (t, h, w))
    for frame in labels:
        for _ in range(rng.integers(0, 4)):  # equal squares of one structure: a tie for the largest
            value, side = rng.integers(1, 4), rng.integers(1, 6)
            for _ in range(2):
                y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
                frame[y : y + side, x : x + side] = value
        if rng.random() < 0.7:  # a cavity ring around a hole with a bit of myocardium inside
            y, x, r = rng.integers(4, h - 4), rng.integers(4, w - 4), rng.integers(3, 8)
            yy, xx = np.mgrid[:h, :w]
            d = np.hypot(yy - y, xx - x)
            frame[(d < r) & (d >= r - 2)] = 1
            frame[d < r - 2] = rng.choice([0, 2, 3])
    labels[rng.random(t) < 0.2] = 0
    return labels.astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_largest_components_of_a_stack_matches_each_frame_alone(seed):
    rng = np.random.default_rng(seed)
    for t, h, w in ((1, 17, 23), (9, 30, 40), (12, 48, 33)):
        labels = _random_labels(rng, t, h, w)
        expected = _largest_components_per_frame(labels)
        assert np.array_equal(largest_components(labels), expected)
        assert np.array_equal(largest_components(labels[0]), expected[0])  # (H, W): the same code


def test_dice_per_class_nan_for_absent_structures():
    a = torch.zeros(1, 8, 8, dtype=torch.long)
    a[0, 2:6, 2:6] = 1
    b = a.clone()
    b[0, 2:6, 2:4] = 2
    d = dice_per_class(b, a)
    assert d["lv"].item() == pytest.approx(2 * 8 / (8 + 16))
    assert d["myo"].item() == 0.0 and torch.isnan(d["la"]).all()
