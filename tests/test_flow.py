"""Flow utilities: warping convention, keypoint (TPS) flows, end-point error, colour wheel."""

import numpy as np
import pytest
import torch

from echokdm.errors import EchoKDMError
from echokdm.flow import endpoint_error, flow_to_rgb, keypoint_flow, warp


def _blob(h=48, w=48, cy=20.0, cx=24.0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0).astype(np.float32)


def test_warp_follows_pull_convention():
    a = _blob(cy=20, cx=24)
    b = _blob(cy=23, cx=22)  # blob moved down 3, left 2
    ddf = np.zeros((2, 48, 48), np.float32)
    ddf[0], ddf[1] = -3.0, 2.0  # each pixel of b comes from 3 rows up, 2 columns right in a
    out = warp(a, ddf).numpy()
    assert out.shape == a.shape
    assert np.abs(out - b)[5:-5, 5:-5].max() < 1e-4
    assert np.abs(warp(a, -ddf).numpy() - b)[5:-5, 5:-5].max() > 0.1


def test_warp_batches_and_nearest_keeps_labels():
    lab = np.zeros((1, 1, 16, 16), np.float32)
    lab[..., 4:8, 4:8] = 2
    ddf = torch.full((1, 2, 16, 16), 0.4)
    out = warp(lab, ddf, mode="nearest")
    assert out.shape == (1, 1, 16, 16)
    assert set(np.unique(out.numpy())) <= {0.0, 2.0}


def test_keypoint_flow_moves_keypoints_and_keeps_corners():
    th = np.linspace(0, np.pi, 20)
    src = np.stack([32 + 12 * np.cos(th), 20 + 18 * np.sin(th)], 1)
    tgt = src + np.array([1.5, -2.0])
    ddf = keypoint_flow(src, tgt, (64, 64))
    assert ddf.shape == (2, 64, 64) and ddf.dtype == np.float32
    for (xs, ys), (xt, yt) in zip(src, tgt):  # at a target keypoint the flow points back to its source
        yi, xi = int(round(yt)), int(round(xt))
        if abs(yt - yi) < 1e-6 and abs(xt - xi) < 1e-6:
            assert abs(ddf[0, yi, xi] - (ys - yt)) < 1e-3
    # sampled with bilinear interpolation at the exact target location
    t = torch.from_numpy(ddf)[None]
    grid = torch.tensor(tgt, dtype=torch.float32)
    norm = torch.stack([grid[:, 0] / 63 * 2 - 1, grid[:, 1] / 63 * 2 - 1], -1)[None, None]
    sampled = torch.nn.functional.grid_sample(t, norm, align_corners=True)[0, :, 0].T.numpy()
    assert np.abs(sampled - (src - tgt)[:, ::-1]).max() < 0.05
    assert np.abs(ddf[:, 0, 0]).max() < 1e-4 and np.abs(ddf[:, -1, -1]).max() < 1e-4


def test_keypoint_flow_rejects_mismatched_sets():
    with pytest.raises(EchoKDMError):
        keypoint_flow(np.zeros((20, 2)), np.zeros((19, 2)), (32, 32))


def test_endpoint_error_and_mask():
    a = np.zeros((2, 8, 8))
    b = np.zeros((2, 8, 8))
    b[0, :4] = 3.0
    b[1, :4] = 4.0
    assert endpoint_error(a, b) == pytest.approx(2.5)
    m = np.zeros((8, 8), bool)
    m[:4] = True
    assert endpoint_error(a, b, m) == pytest.approx(5.0)
    assert np.isnan(endpoint_error(a, b, np.zeros((8, 8), bool)))


def test_flow_to_rgb_encodes_direction():
    ddf = np.zeros((2, 4, 8), np.float32)
    ddf[1, :, :4] = 1.0  # rightwards
    ddf[1, :, 4:] = -1.0  # leftwards
    rgb = flow_to_rgb(ddf)
    assert rgb.shape == (4, 8, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[0, 7])
    assert rgb[0, 0].max() == 255
