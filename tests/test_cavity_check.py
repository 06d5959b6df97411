"""The cavity check: :func:`echokdm.flow.cavity_overlap` and the pipeline's trust in K2F's correction and F2I's
residual (``EchoKDMPipeline.cavity_tolerance``)."""

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

import echokdm.pipeline as pipeline_module
from echokdm.flow import CONTOUR_POINTS, cavity_overlap, heart_region, keypoint_flow


def _ring(rx: float, ry: float, cx: float = 56.0, cy: float = 50.0) -> np.ndarray:
    t = np.linspace(0.1, 2 * np.pi - 0.1, CONTOUR_POINTS) + np.pi / 2
    return np.stack([cx + rx * np.cos(t), cy - ry * np.sin(t)], 1)


SOURCE = np.concatenate([_ring(14, 22), _ring(20, 28)])  # endocardium, then epicardium
TARGET = SOURCE.copy()
TARGET[:, 0] = 56 + (TARGET[:, 0] - 56) * 0.75  # the ventricle narrows (a systole)


def _kps(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()[None]


def _ventricle(region: np.ndarray, margin: float = pipeline_module.ATRIUM_RAMP) -> torch.Tensor:
    """The part of a (H, W) region of the target at least ``margin`` px on the apex side of its base line (default:
    beyond the atrium's ramp; the rings' ends lie at the top, so the wall above them is on the atrial side)."""
    side = pipeline_module.ventricle_side(_kps(TARGET), region.shape, margin)[0]
    return torch.from_numpy(region) & (side == 1)


def test_cavity_overlap_scores_where_a_flow_puts_the_cavity():
    shape = (112, 112)
    spline = torch.from_numpy(keypoint_flow(SOURCE, TARGET, shape))[None]
    still = torch.zeros_like(spline)
    src, tgt = _kps(SOURCE), _kps(TARGET)
    assert cavity_overlap(still, src, src)[0] == pytest.approx(1.0)
    carried, stayed = cavity_overlap(spline, src, tgt)[0], cavity_overlap(still, src, tgt)[0]
    assert carried > 0.97 and stayed < 0.9  # a flow that does not move the cavity scores what copying would
    both = cavity_overlap(torch.cat([spline, still]), torch.cat([src, src]), torch.cat([tgt, tgt]))
    np.testing.assert_allclose(both, [carried, stayed])


@pytest.fixture(scope="module")
def pipe():
    return pipeline_module.EchoKDMPipeline.from_weights()


def _run(pipe, monkeypatch, slide: float, tolerance, weight: torch.Tensor | float = 1.0, strict: bool = False):
    """The shipped pipeline with K2F's decoded correction replaced by one that moves everything ``slide`` px towards
    the base (along the side walls, which the contour snapping leaves alone: the cavity leaves the keypoints'
    place), times ``weight``; ``strict``: the check at tolerance 0 (the EF check's second attempt)."""
    size = pipe.sample_size
    src = torch.from_numpy(np.random.default_rng(1).random((1, 1, size, size), dtype=np.float32))
    fake = torch.zeros(1, 2, size, size)
    fake[:, 0] = -slide  # pull from above: the picture moves down
    monkeypatch.setattr(pipeline_module, "decode_flow", lambda vae, latent: fake * weight)
    pipe.cavity_tolerance = tolerance
    try:
        g = torch.Generator().manual_seed(0)
        out = pipe.generate_flow(src, _kps(SOURCE), _kps(TARGET), 2, g, strict)
        frames, _, warped = pipe.render(src, out.flow, [1.0], 2, torch.Generator().manual_seed(0), out.trust)
    finally:
        pipe.cavity_tolerance = pipeline_module.CAVITY_TOLERANCE
    return out, frames, warped


def test_a_correction_that_moves_the_cavity_elsewhere_is_dropped_in_the_heart(pipe, monkeypatch):
    size = pipe.sample_size
    # 16 px from the base line: the atrium above keeps the correction, and the contour snapping's Gaussian (4 sigma)
    # carries a trace of it across the base line
    heart = _ventricle(binary_erosion(heart_region(TARGET, (size, size)), iterations=6), margin=16.0)
    unchecked, _, _ = _run(pipe, monkeypatch, 30.0, None)
    checked, frames, warped = _run(pipe, monkeypatch, 30.0, pipeline_module.CAVITY_TOLERANCE)
    src, tgt = _kps(SOURCE), _kps(TARGET)
    assert cavity_overlap(unchecked.flow, src, tgt)[0] < cavity_overlap(checked.flow, src, tgt)[0] - 0.05
    assert torch.equal(unchecked.trust, torch.ones_like(unchecked.trust))
    assert checked.trust[0, 0][heart].max() == 0  # the heart moves with the spline ...
    assert torch.allclose(checked.flow[0][:, heart], checked.keypoint_flow[0][:, heart], atol=1e-2)
    assert checked.trust[0, 0, 2, 2] > 0.99  # ... and the correction is kept far from it
    assert torch.allclose(frames[0, 0][heart], warped[0, 0][heart].clamp(0, 1), atol=1e-6)  # no F2I residual there
    assert (frames - warped.clamp(0, 1)).abs()[0, 0, :12, :12].max() > 1e-3


def test_the_correction_keeps_the_most_weight_that_passes_the_check(pipe, monkeypatch):
    size = pipe.sample_size
    heart = _ventricle(heart_region(TARGET, (size, size)))
    src, tgt = _kps(SOURCE), _kps(TARGET)
    out, _, _ = _run(pipe, monkeypatch, 8.0, pipeline_module.CAVITY_TOLERANCE)
    level = float(out.trust[0, 0][heart].max())
    assert level in pipeline_module.TRUST_LEVELS[1:-1] and float(out.trust[0, 0][heart].min()) == level
    needed = cavity_overlap(out.keypoint_flow, src, tgt)[0] - pipeline_module.CAVITY_TOLERANCE
    assert cavity_overlap(out.flow, src, tgt)[0] >= needed
    stronger = pipeline_module.TRUST_LEVELS[pipeline_module.TRUST_LEVELS.index(level) - 1]
    heart_weight = 1 - (1 - stronger) * pipeline_module.heart_fade(tgt, (size, size), pipeline_module.TRUST_REACH) * (
        pipeline_module.ventricle_side(tgt, (size, size), pipeline_module.ATRIUM_RAMP))
    more, _, _ = _run(pipe, monkeypatch, 8.0, None, heart_weight[:, None].float())
    assert cavity_overlap(more.flow, src, tgt)[0] < needed  # one level more would fail the check
    nothing, _, _ = _run(pipe, monkeypatch, 0.0, pipeline_module.CAVITY_TOLERANCE)
    assert torch.equal(nothing.trust, torch.ones_like(nothing.trust))  # a correction that keeps the cavity: whole


def test_the_guard_predictor_sets_the_tolerance_and_refuses_bad_ones():
    from echokdm.errors import InputError
    from echokdm.evaluate.predictors import get_predictor

    assert get_predictor("kdm").pipe.cavity_tolerance == pipeline_module.CAVITY_TOLERANCE  # the shipped check
    assert get_predictor("kdm-guard:0.02").pipe.cavity_tolerance == 0.02
    assert get_predictor("kdm-guard:1").pipe.cavity_tolerance == 1.0  # never intervenes
    for bad in ("kdm-guard:1.5", "kdm-guard:-0.1", "kdm-guard:abc"):
        with pytest.raises(InputError, match="kdm-guard:TOL"):
            get_predictor(bad)


def test_strict_holds_the_correction_to_the_spline(pipe, monkeypatch):
    """A correction that carries the cavity 0.02 Dice less well than the spline passes the shipped check whole; the
    strict check (the EF check's second attempt) weights it down until the cavity is carried at least as well."""
    size = pipe.sample_size
    heart = _ventricle(heart_region(TARGET, (size, size)))
    src, tgt = _kps(SOURCE), _kps(TARGET)
    lax, _, _ = _run(pipe, monkeypatch, 4.0, pipeline_module.CAVITY_TOLERANCE)
    strict, _, _ = _run(pipe, monkeypatch, 4.0, pipeline_module.CAVITY_TOLERANCE, strict=True)
    spline = cavity_overlap(lax.keypoint_flow, src, tgt)[0]
    assert torch.equal(lax.trust, torch.ones_like(lax.trust)) and cavity_overlap(lax.flow, src, tgt)[0] < spline - 0.01
    assert float(strict.trust[0, 0][heart].max()) < 1 and cavity_overlap(strict.flow, src, tgt)[0] >= spline


def test_kdm_runs_the_ef_check_and_its_ablations_do_not():
    from echokdm.defaults import EF_CHECK
    from echokdm.evaluate.predictors import predictor_class

    assert predictor_class("kdm").ef_check == EF_CHECK and predictor_class("kdm-adapt").ef_check == EF_CHECK
    for name in ("kdm-guard", "kdm-heart", "kdm-local", "k2f-warp"):
        assert predictor_class(name).ef_check is None, name


def test_the_atrium_beyond_the_base_line_keeps_the_correction(pipe, monkeypatch):
    """Where the check weights the correction down, it does so up to the target's base line: beyond it (the atrium)
    the trust is 1 again within the ramp's width, on the apex side it is the level taken."""
    checked, _, _ = _run(pipe, monkeypatch, 30.0, pipeline_module.CAVITY_TOLERANCE)
    endo = TARGET[:CONTOUR_POINTS]
    base, apex = (endo[0] + endo[-1]) / 2, endo.mean(0)
    direction = (apex - base) / np.linalg.norm(apex - base)
    atrium = np.round(base - 2 * pipeline_module.ATRIUM_RAMP * direction).astype(int)  # 6 px below the base line
    ventricle = np.round(base + 2 * pipeline_module.ATRIUM_RAMP * direction).astype(int)  # 6 px above it
    trust = checked.trust[0, 0]
    assert float(trust[atrium[1], atrium[0]]) == 1.0
    assert float(trust[ventricle[1], ventricle[0]]) == float(trust.min()) == 0.0


def test_ventricle_side_ramps_across_the_base_line():
    from echokdm.flow import ventricle_side

    kps = _kps(SOURCE)  # the rings' ends at the top (base line at y ~ 28.1), the apex below
    side = ventricle_side(kps, (112, 112), 3.0)[0]
    base_y = float((SOURCE[0, 1] + SOURCE[CONTOUR_POINTS - 1, 1]) / 2)
    assert float(side[int(base_y) + 4, 56]) == 1.0 and float(side[int(base_y) - 4, 56]) == 0.0
    assert 0.0 < float(side[round(base_y), 56]) < 1.0
    assert float(side[100, 5]) == 1.0 and float(side[5, 100]) == 0.0  # a half-plane: the whole image is split
