"""The source <-> working grid map of predictions: points, flows and the residual transfer back to full size."""

import numpy as np
import pytest
import torch

from echokdm.flow import warp
from echokdm.models.seg import SectorFit
from echokdm.predict import residual_transfer

FIT = SectorFit(shape=(240, 320), box=(41, 19, 298, 207), size=112)


def blob(shape, centre, sigma):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def centroid(img: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()


@pytest.mark.parametrize("point", [(150.3, 100.7), (60.0, 40.5), (280.2, 190.0)])
def test_points_follow_the_image_map(point):
    work = FIT.to_work(torch.from_numpy(blob(FIT.shape, point, 6.0))[None, None])[0, 0].numpy()
    np.testing.assert_allclose(FIT.points_to_work(np.array(point)), centroid(work), atol=0.02)
    back = FIT.to_source(torch.from_numpy(blob((112, 112), FIT.points_to_work(np.array(point)), 1.5))[None, None])[0, 0].numpy()
    np.testing.assert_allclose(centroid(back), point, atol=0.05)


def test_point_maps_are_inverse_and_keep_shapes():
    pts = np.random.default_rng(0).uniform(0, 200, size=(3, 40, 2))
    work = FIT.points_to_work(pts)
    assert work.shape == pts.shape
    np.testing.assert_allclose(FIT.points_to_source(work), pts, atol=1e-9)
    # the square around the sector is 258 source pixels wide: a 112-pixel working grid shrinks distances by 112/258
    d_src, d_work = np.linalg.norm(pts[0, 1] - pts[0, 0]), np.linalg.norm(work[0, 1] - work[0, 0])
    assert d_work == pytest.approx(d_src * 112 / FIT.side)


def test_flow_to_source_moves_images_the_same_way():
    img = blob(FIT.shape, (170.0, 110.0), 10.0)
    flow = torch.zeros(1, 2, 112, 112)
    flow[0, 0], flow[0, 1] = 3.0, -2.0  # pull: content moves 3 px up and 2 px right on the working grid
    full = warp(torch.from_numpy(img)[None, None], FIT.flow_to_source(flow))[0, 0].numpy()
    expected = np.array([170.0, 110.0]) + np.array([2.0, -3.0]) * FIT.side / 112
    np.testing.assert_allclose(centroid(full), expected, atol=0.05)


def test_residual_transfer_keeps_the_source_without_motion_or_residual():
    rng = np.random.default_rng(1)
    source = torch.from_numpy(rng.random(FIT.shape, dtype=np.float32))
    sector = np.zeros(FIT.shape, bool)
    sector[40:180, 60:280] = True
    frames, flows = residual_transfer(source, sector, FIT, torch.zeros(2, 2, 112, 112), torch.zeros(2, 1, 112, 112))
    assert frames.shape == (2, *FIT.shape) and flows.shape == (2, 2, *FIT.shape)
    np.testing.assert_allclose(frames, np.broadcast_to(source.numpy(), frames.shape), atol=1e-4)
    assert not flows.any()


def test_residual_transfer_adds_the_residual_inside_the_sector_only():
    source = torch.full(FIT.shape, 0.5)
    sector = np.zeros(FIT.shape, bool)
    sector[60:150, 100:220] = True
    residual = torch.full((1, 1, 112, 112), 0.2)
    frames, _ = residual_transfer(source, sector, FIT, torch.zeros(1, 2, 112, 112), residual)
    np.testing.assert_allclose(frames[0][sector], 0.7, atol=1e-5)
    np.testing.assert_allclose(frames[0][~sector], 0.5)
