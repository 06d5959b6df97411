"""Flow utilities: warping convention, keypoint (TPS) flows, end-point error, colour wheel."""

import numpy as np
import pytest
import torch

from echokdm.errors import EchoKDMError
from echokdm.flow import contour_normals, endpoint_error, flow_to_rgb, keypoint_flow, snap_to_contours, warp


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
    for (_xs, ys), (xt, yt) in zip(src, tgt):  # at a target keypoint the flow points back to its source
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


def _ellipse_keypoints(n=20, cx=40.0, cy=36.0):
    th = np.linspace(0.15 * np.pi, 1.85 * np.pi, n)  # hinge -> apex -> hinge, open at the base
    return np.stack([cx + 14 * np.sin(th), cy - 20 * np.cos(th)], 1)


def _at(flow, kps):
    """(K, 2) values (dy, dx) of a (2, H, W) flow at keypoints (x, y), bilinear."""
    h, w = flow.shape[-2:]
    g = torch.tensor(kps, dtype=torch.float64) * torch.tensor([2 / (w - 1), 2 / (h - 1)]) - 1
    return torch.nn.functional.grid_sample(flow[None].double(), g[None, None], align_corners=True)[0, :, 0].T.numpy()


def test_contour_normals_are_unit_and_across_the_contour():
    kps = np.concatenate([_ellipse_keypoints(), _ellipse_keypoints(cx=40.5, cy=35.0) * 1.0])
    n = contour_normals(kps)
    assert n.shape == (40, 2) and np.allclose(np.linalg.norm(n, axis=1), 1.0)
    tangent = np.gradient(kps[:20], axis=0)
    assert np.abs((n[:20] * tangent).sum(1)).max() < 1e-9
    assert abs(n[9] @ np.array([0.0, 1.0])) > 0.95  # near the apex (top) the normal is nearly vertical


def test_snap_to_contours_fixes_the_motion_across_the_contour_its_hinges_and_its_base():
    kps = _ellipse_keypoints()
    normal = contour_normals(kps)[:, ::-1]  # (dy, dx)
    tangent = normal[:, ::-1] * np.array([1.0, -1.0])
    reference = torch.from_numpy(keypoint_flow(kps + 1.0, kps, (72, 80)))[None]
    # a flow whose contour misses the keypoints (1.5 px across) and that slides tissue along it (1 px)
    rng = np.random.default_rng(0)
    off = 1.5 * normal + tangent * rng.uniform(-1, 1, (20, 1))
    bump = keypoint_flow(kps + off[:, ::-1], kps, (72, 80), anchors=np.array([[0.0, 0.0], [79.0, 71.0]]))
    flow = reference + torch.from_numpy(bump)[None].float()
    snapped = snap_to_contours(flow, reference, torch.from_numpy(kps)[None])
    d_before = _at(flow[0] - reference[0], kps)
    d_after = _at(snapped[0] - reference[0], kps)
    inner = slice(1, 19)  # the two ends are the annulus hinges
    assert np.abs((d_before * normal).sum(1)).min() > 1.0  # it missed the contour
    assert np.abs((d_after * normal).sum(1)).max() < 0.1  # now it lies on it
    assert np.abs(((d_after - d_before) * tangent).sum(1))[inner].max() < 0.1  # sliding along it untouched
    assert np.abs(((d_before) * tangent).sum(1))[[0, 19]].max() > 0.2  # the hinges slid ...
    assert np.abs(d_after[[0, 19]]).max() < 0.1  # ... and now move exactly as the reference
    mid_base = (kps[0] + kps[19]) / 2  # the base line runs along x here: its normal motion is dy
    assert abs(_at(flow[0] - reference[0], mid_base[None])[0, 0]) > 0.5
    assert abs(_at(snapped[0] - reference[0], mid_base[None])[0, 0]) < 0.1
    far = snapped[0, :, :, 70:] - flow[0, :, :, 70:]  # > 15 px from every keypoint
    assert far.abs().max() < 1e-3
    assert snapped.shape == flow.shape and snapped.dtype == flow.dtype
