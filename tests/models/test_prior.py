"""Keypoint motion prior: fit on synthetic contracting ventricles, predict, hit a target EF, save/load."""

import numpy as np
import pytest

from echokdm.errors import InputError
from echokdm.keypoints import myocardial_area
from echokdm.metrics import ef_from_keypoints
from echokdm.models.prior import KeypointMotionPrior, canonical_frame


def lv_keypoints(width: float, length: float, centre=(60.0, 70.0), angle: float = 0.0) -> np.ndarray:
    """40 keypoints of a bullet-shaped LV (apex up), hinge -> apex -> hinge, endo then epi."""
    t = np.linspace(0, np.pi, 20)
    endo = np.stack([-width * np.cos(t), -length * np.sin(t)], 1)
    epi = np.stack([-(width + 5) * np.cos(t), -(length + 5) * np.sin(t)], 1)
    pts = np.concatenate([endo, epi])
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]]) + np.asarray(centre)


def trajectory(width, length, shortening, thickening, n=9, **kw):
    fr = np.linspace(0, 1, n)
    return np.stack([lv_keypoints(width * (1 - thickening * f), length * (1 - shortening * f), **kw) for f in fr])


@pytest.fixture(scope="module")
def prior():
    rng = np.random.default_rng(0)
    trajs = [trajectory(rng.uniform(18, 26), rng.uniform(40, 55), rng.uniform(0.1, 0.2), rng.uniform(0.2, 0.35),
                        angle=rng.uniform(-0.2, 0.2)) for _ in range(30)]
    return KeypointMotionPrior.fit(trajs, n_phases=8)


def test_canonical_frame_is_similarity_invariant():
    a = lv_keypoints(20, 50)
    b = lv_keypoints(20, 50, centre=(10, 90), angle=0.4) * 1.0
    oa, ra, la = canonical_frame(a)
    ob, rb, lb = canonical_frame(b)
    np.testing.assert_allclose((a - oa) @ ra.T / la, (b - ob) @ rb.T / lb, atol=1e-9)


def test_predict_starts_at_source_and_contracts(prior):
    src = lv_keypoints(22, 48, angle=0.1)
    out = prior.predict(src, [0.0, 0.5, 1.0])
    assert out.shape == (3, 40, 2)
    np.testing.assert_allclose(out[0], src, atol=1e-9)
    ef_half, ef_full = ef_from_keypoints(src, out[1]), ef_from_keypoints(src, out[2])
    assert 0 < ef_half < ef_full
    assert 25 < ef_full < 75  # the training hearts had EFs in this range


@pytest.mark.parametrize("target", [20.0, 35.0, 60.0])
def test_target_ef_is_hit_within_one_point(prior, target):
    src = lv_keypoints(21, 50)
    es = prior.for_target_ef(src, target)[0]
    assert abs(ef_from_keypoints(src, es) - target) < 1.0


@pytest.mark.parametrize("spacing", [(0.3, 0.6), (0.5, 0.25), (0.4, 0.4)])
def test_target_ef_is_hit_on_the_given_spacing(prior, spacing):
    """Called as a KeypointPrior, the prior hits the EF measured on the pixels it is given, square or not (an
    oblique ventricle: on non-square pixels its EF differs from that on square ones)."""
    src = lv_keypoints(21, 50, angle=0.6)
    es = prior(src, target_ef=40.0, spacing_mm=spacing)
    assert ef_from_keypoints(src, es, spacing) == pytest.approx(40.0, abs=1e-3)


def test_the_es_wall_moves_with_the_endocardium_keeping_its_area(prior):
    """Called as a KeypointPrior, the prior gives its own ES endocardium and the source's wall moved along at constant
    area, where its own trajectory's wall changes area (here it shrinks by 12 %)."""
    src = lv_keypoints(21, 50)
    es = prior(src, target_ef=40.0, spacing_mm=None)
    np.testing.assert_allclose(es[:20], prior.for_target_ef(src, 40.0)[-1][:20])
    assert myocardial_area(es) == pytest.approx(myocardial_area(src), rel=1e-4)
    assert abs(myocardial_area(prior.for_target_ef(src, 40.0)[-1]) / myocardial_area(src) - 1) > 0.05


def test_bad_requests_are_clear_errors(prior):
    src = lv_keypoints(21, 50)
    with pytest.raises(InputError, match="between 5 and 90"):
        prior.for_target_ef(src, 95)
    with pytest.raises(InputError, match="phases"):
        prior.predict(src, [1.5])
    with pytest.raises(InputError, match="expects"):
        prior.predict(src[:20])
    with pytest.raises(InputError, match="at least 2"):
        KeypointMotionPrior.fit([trajectory(20, 50, 0.1, 0.2)])


def test_save_load_round_trip(prior, tmp_path):
    path = tmp_path / "prior.safetensors"
    prior.save(path)
    loaded = KeypointMotionPrior.load(path)
    src = lv_keypoints(23, 47)
    np.testing.assert_allclose(loaded.predict(src), prior.predict(src), atol=1e-4)
