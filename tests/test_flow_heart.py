"""The motion outside the heart: :func:`echokdm.flow.heart_region` and :func:`echokdm.flow.confine_to_heart`,
and the pipeline's ``heart_reach`` and ``correction_fade``."""

from functools import partial

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from echokdm.flow import CONTOUR_POINTS, confine_to_heart, heart_fade, heart_region


def _ring(rx: float, ry: float, cx: float = 32.0, cy: float = 30.0) -> np.ndarray:
    """An open contour of CONTOUR_POINTS from one base end round the apex (top) to the other."""
    t = np.linspace(0.1, 2 * np.pi - 0.1, CONTOUR_POINTS) + np.pi / 2
    return np.stack([cx + rx * np.cos(t), cy - ry * np.sin(t)], 1)


KPS = np.concatenate([_ring(8, 12), _ring(12, 16)])  # endocardium, then epicardium


def test_heart_region_is_what_the_contours_enclose():
    region = heart_region(KPS, (64, 64))
    assert region[30, 32] and region[30, 32 + 10]  # cavity, and the wall between the contours
    assert not region[30, 32 + 14] and not region[2, 2]
    assert heart_region(KPS[:CONTOUR_POINTS], (64, 64)).sum() < region.sum()


def test_confine_to_heart_keeps_the_heart_and_fades_outside():
    flow = torch.ones(2, 2, 64, 64)
    kps = torch.from_numpy(np.stack([KPS, KPS + [8.0, 0.0]])).float()
    out = confine_to_heart(flow, kps, sigma=4.0)
    for b in range(2):
        inside = torch.from_numpy(heart_region(kps[b].numpy(), (64, 64)))
        assert torch.equal(out[b][:, inside], flow[b][:, inside])
        assert out[b, :, 60, 2].abs().max() < 1e-6  # far outside
    x = int(np.ceil(KPS[CONTOUR_POINTS:, 0].max())) + 4  # about sigma beyond the epicardium on the apex row
    assert 0.3 < float(out[0, 0, 30, x]) < 0.9
    assert out[0, 0, 30, x] < out[0, 0, 30, x - 2] and out[0, 0, 30, x] > out[0, 0, 30, x + 4]
    assert torch.allclose(confine_to_heart(flow[:1], kps[:1], sigma=1e6), flow[:1], atol=1e-6)


@pytest.fixture(scope="module")
def pipe():
    from echokdm.pipeline import EchoKDMPipeline

    return EchoKDMPipeline.from_weights()


def test_pipeline_flow_is_confined_only_outside_the_heart(pipe):
    size = pipe.sample_size
    rng = np.random.default_rng(0)
    src = torch.from_numpy(rng.random((1, 1, size, size), dtype=np.float32))
    kps = torch.from_numpy(np.concatenate([_ring(14, 22, 56, 50), _ring(20, 28, 56, 50)])).float()[None]
    tgt = kps.clone()
    tgt[0, :, 0] = 56 + (tgt[0, :, 0] - 56) * 0.85  # the ventricle narrows
    flows = {}
    for reach in (None, 8.0):
        pipe.heart_reach = reach
        flows[reach] = pipe.generate_flow(src, kps, tgt, 2, torch.Generator().manual_seed(0))[0]
    pipe.heart_reach = None
    inside = torch.from_numpy(heart_region(tgt[0].numpy(), (size, size)))
    assert torch.allclose(flows[8.0][0][:, inside], flows[None][0][:, inside])
    far = flows[None][0, :, 2:8, 2:8].abs().max()
    assert far > 0.05  # the spline and K2F move the far corner ...
    assert flows[8.0][0, :, 2:8, 2:8].abs().max() < 1e-3 * far  # ... confined, it stays


def test_pipeline_correction_is_confined_but_the_spline_is_kept(pipe):
    size = pipe.sample_size
    src = torch.from_numpy(np.random.default_rng(1).random((1, 1, size, size), dtype=np.float32))
    kps = torch.from_numpy(np.concatenate([_ring(14, 22, 56, 50), _ring(20, 28, 56, 50)])).float()[None]
    tgt = kps.clone()
    tgt[0, :, 0] = 56 + (tgt[0, :, 0] - 56) * 0.85
    flows = {}
    for reach in (None, 8.0):
        pipe.correction_fade = None if reach is None else partial(heart_fade, sigma=reach)
        flows[reach] = pipe.generate_flow(src, kps, tgt, 2, torch.Generator().manual_seed(0))
    pipe.correction_fade = None
    (full, spline, _), (local, spline_local, _) = flows[None], flows[8.0]
    assert torch.equal(spline, spline_local)
    # inside the heart, away from the contours whose snapping (4 px) reaches out, K2F's flow is kept
    inside = torch.from_numpy(binary_erosion(heart_region(tgt[0].numpy(), (size, size)), iterations=12))
    assert inside.sum() > 100 and torch.allclose(local[0][:, inside], full[0][:, inside], atol=1e-4)
    correction = (full - spline)[0, :, 2:8, 2:8].abs().max()
    assert correction > 0.05  # K2F corrects the spline in the far corner ...
    assert (local - spline)[0, :, 2:8, 2:8].abs().max() < 1e-3 * correction  # ... confined, the spline alone moves it
    assert spline[0, :, 2:8, 2:8].abs().max() > 0.05


@pytest.mark.parametrize("name", ["kdm-heart", "kdm-local"])
def test_reach_predictors_set_the_reach_and_refuse_bad_ones(name):
    from echokdm.errors import InputError
    from echokdm.evaluate.predictors import get_predictor

    shipped = get_predictor("kdm").pipe
    assert shipped.heart_reach is None and shipped.correction_fade is None  # the shipped pipeline does not fade
    pipe = get_predictor(f"{name}:12").pipe
    if name == "kdm-heart":
        assert pipe.heart_reach == 12.0 and pipe.correction_fade is None
    else:
        assert pipe.heart_reach is None and pipe.correction_fade.keywords == {"sigma": 12.0}
    for bad in (f"{name}:0", f"{name}:abc", f"{name}:nan"):
        with pytest.raises(InputError, match=f"{name}:PX"):
            get_predictor(bad)
