"""Per-case scores of the evaluation harness on hand-made inputs."""

import numpy as np
import pytest
from evaluate_synthetic import ed_labels, synthetic_case

from echokdm.evaluate.scores import area_jitter, keypoint_distance, warp_residual
from echokdm.metrics import PSNR_CAP, lv_overlap, psnr_in_sector, ssim_in_sector


@pytest.fixture(scope="module")
def case():
    return synthetic_case(0, size=64)


def test_identical_images_score_perfectly(case):
    t = case.frames[-1:]
    assert psnr_in_sector(t, t, case.sector_mask) == PSNR_CAP
    assert ssim_in_sector(t, t, case.sector_mask) == pytest.approx(1.0, abs=1e-5)


def test_psnr_counts_only_the_sector(case):
    t = case.frames[-1:]
    p = t + 0.1 * ~case.sector_mask  # changes outside the sector only
    assert psnr_in_sector(p, t, case.sector_mask) == PSNR_CAP
    q = t + 0.1 * case.sector_mask
    assert psnr_in_sector(q, t, case.sector_mask) == pytest.approx(20.0, abs=1e-3)  # mse 0.01
    assert ssim_in_sector(p, t, case.sector_mask) == pytest.approx(1.0, abs=1e-5)
    assert ssim_in_sector(q[:, ::-1].copy(), t, case.sector_mask) < 0.9


def test_lv_overlap_perfect_and_shifted():
    lab = ed_labels(64)[None]
    dice, hd = lv_overlap(lab, lab, (0.3, 0.3))
    assert dice == 1.0 and hd == 0.0
    shifted = np.roll(lab, 4, axis=2)
    dice, hd = lv_overlap(shifted, lab, (0.3, 0.5))
    assert 0.5 < dice < 1.0
    assert 0.5 <= hd <= 4 * 0.5 + 1e-6  # at most the shift of 4 columns at dx = 0.5 mm
    assert lv_overlap(shifted, lab, (0.3, 1.0))[1] > hd  # distances are in mm
    empty = np.zeros_like(lab)
    dice, hd = lv_overlap(empty, lab, None)
    assert dice == 0.0 and np.isnan(hd)


def test_keypoint_distance_in_mm():
    a = np.zeros((20, 2))
    b = a + np.array([3.0, 4.0])  # (x, y)
    assert keypoint_distance(a, b, None) == pytest.approx(5.0)
    assert keypoint_distance(a, b, (0.5, 2.0)) == pytest.approx(np.hypot(3 * 2.0, 4 * 0.5))


def test_temporal_scores(case):
    frames = case.frames
    rng = np.random.default_rng(0)
    flicker = np.clip(frames + rng.normal(0, 0.1, frames.shape), 0, 1).astype(np.float32)
    smooth = warp_residual(frames, case.sector_mask)
    assert warp_residual(np.repeat(frames[:1], 4, 0), case.sector_mask) == pytest.approx(0.0, abs=1e-6)
    assert smooth < 0.5 * warp_residual(flicker, case.sector_mask)
    labels = np.stack([case.labels[t] for t in range(len(frames))])
    steady = area_jitter(labels)
    jumpy = labels.copy()
    jumpy[::2] = labels[0]
    assert area_jitter(np.repeat(labels[:1], 5, 0)) == 0.0
    assert steady < area_jitter(jumpy)
