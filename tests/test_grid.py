"""echokdm.grid: the source <-> working grid map (points, flows), the residual transfer back to full size, and
generation on the source grid (any model, and KDM against its pipeline run by hand)."""

import numpy as np
import pytest
import torch

from echokdm.flow import warp
from echokdm.grid import SectorFit, kdm_on_source_grid, motion_fractions, on_source_grid, residual_transfer

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
    back = FIT.to_source(torch.from_numpy(blob((112, 112), FIT.points_to_work(np.array(point)), 1.5))[None, None])[
        0, 0
    ].numpy()
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


def test_on_source_grid_hands_the_model_working_grid_inputs_and_maps_back():
    source = blob(FIT.shape, (170.0, 110.0), 10.0)
    sector = np.zeros(FIT.shape, bool)
    sector[19:208, 41:299] = True
    src_kps = np.array([[150.0, 100.0], [160.0, 120.0]])
    targets = np.stack([src_kps + 2.0, src_kps + 4.0])
    seen = {}

    def model(src, s_kps, t_kps):  # moves nothing and adds nothing: the source must come back
        seen.update(src=src, s_kps=s_kps, t_kps=t_kps)
        flows = torch.zeros(len(t_kps), 2, 112, 112)
        warped = warp(src.expand(len(t_kps), -1, -1, -1), flows)
        return warped, flows, warped

    out = on_source_grid(model, 112, source, sector, src_kps, targets)
    assert out.fit == FIT and seen["src"].shape == (1, 1, 112, 112)
    np.testing.assert_allclose(seen["s_kps"][0].numpy(), FIT.points_to_work(src_kps), atol=1e-5)
    np.testing.assert_allclose(torch.cat(seen["t_kps"]).numpy(), FIT.points_to_work(targets), atol=1e-5)
    assert out.frames.shape == (2, *FIT.shape) and not out.flows.any()
    np.testing.assert_allclose(out.frames, np.broadcast_to(source, out.frames.shape), atol=1e-4)


def test_motion_fractions_are_least_squares_fractions_of_the_last_target():
    src = np.array([[0.0, 0.0], [10.0, 0.0]])
    move = np.array([[2.0, 4.0], [0.0, -4.0]])
    assert motion_fractions(src, [src + 0.25 * move, src + move]) == pytest.approx([0.25, 1.0])
    assert motion_fractions(src, [src]) == [1.0]  # a single target is the whole motion, even without motion
    assert motion_fractions(src, [src, src + move])[0] == pytest.approx(1e-3)  # alphas stay in (0, 1]


@pytest.mark.parametrize("warp_only", [False, True])
def test_kdm_on_source_grid_is_the_pipeline_on_the_working_grid_carried_back(tiny_weights, warp_only):
    from echokdm.pipeline import EchoKDMPipeline

    pipe = EchoKDMPipeline.from_pretrained(tiny_weights)
    fit = SectorFit(shape=(90, 120), box=(10, 5, 109, 84), size=pipe.sample_size)
    rng = np.random.default_rng(0)
    source = rng.random(fit.shape, dtype=np.float32)
    sector = np.zeros(fit.shape, bool)
    sector[5:85, 10:110] = True
    src_kps = rng.uniform(30, 70, size=(40, 2))
    tgt_kps = src_kps + rng.normal(0, 2, size=(40, 2))
    out = kdm_on_source_grid(pipe, source, sector, src_kps, tgt_kps, [0.5, 1.0], 1, torch.Generator().manual_seed(3),
                             warp_only=warp_only)
    assert out.fit == fit
    # by hand: the pipeline on the working grid, then the residual transfer
    work = pipe(fit.to_work(torch.from_numpy(source)[None, None])[0, 0], fit.points_to_work(src_kps),
                fit.points_to_work(tgt_kps), alphas=[0.5, 1.0], num_inference_steps=1,
                generator=torch.Generator().manual_seed(3), output_type="pt")
    residual = torch.zeros_like(work.warped) if warp_only else work.frames - work.warped
    frames, flows = residual_transfer(torch.from_numpy(source), sector, fit, work.flows, residual[:, None])
    np.testing.assert_allclose(out.frames, frames, atol=1e-6)
    np.testing.assert_allclose(out.flows, flows, atol=1e-6)
