"""Keypoint extraction and drawing on analytic A4C-like label maps."""

import numpy as np
import pytest
from a4c_shapes import a4c_labels, to_image, to_shape

from echokdm.errors import EchoKDMError, InputError
from echokdm.keypoints import extract_keypoints, keypoints_to_mask

BIG = dict(a=80.0, b=40.0, offset=20.0, wall=12.0)  # LV 100 px long on a 256 grid
REF_BASE = (128.0, 200.0)


@pytest.fixture(scope="module")
def big():
    return a4c_labels((256, 256), base=REF_BASE, **BIG)


def test_order_hinges_and_apex(big):
    k = extract_keypoints(big, 20)
    assert k.shape == (20, 2)
    uv = to_shape(k, REF_BASE)
    # hinges on the annulus (u = 0) at the cavity's basal corners, septal (image-left, v < 0) first
    base_half = 40 * np.sqrt(1 - (20 / 80) ** 2)
    np.testing.assert_allclose(uv[[0, 19], 0], 0.0, atol=0.6)
    np.testing.assert_allclose(uv[[0, 19], 1], [-base_half, base_half], atol=0.6)
    # symmetric shape: points k and 19 - k mirror each other; the apex lies between 9 and 10
    np.testing.assert_allclose(uv[:, 0], uv[::-1, 0], atol=0.3)
    np.testing.assert_allclose(uv[:, 1], -uv[::-1, 1], atol=0.3)
    assert np.all(np.diff(uv[:10, 0]) > 0) and np.all(np.diff(uv[10:, 0]) < 0)
    # equal arc-length steps within each side
    steps = np.linalg.norm(np.diff(k[:10], axis=0), axis=1)
    assert steps.max() / steps.min() < 1.15


def test_septal_side_is_a_parameter(big):
    left = extract_keypoints(big, 20)
    right = extract_keypoints(big, 20, septum_side="right")
    np.testing.assert_allclose(right, left[::-1], atol=1e-9)
    mirrored = extract_keypoints(big[:, ::-1], 20, septum_side="right")
    np.testing.assert_allclose(mirrored[:, 0], 255 - left[:, 0], atol=1e-6)
    np.testing.assert_allclose(mirrored[:, 1], left[:, 1], atol=1e-6)


def test_forty_keypoints_follow_the_epicardium(big):
    k = extract_keypoints(big, 40)
    np.testing.assert_allclose(k[:20], extract_keypoints(big, 20))
    uv = to_shape(k[20:], REF_BASE)
    # epicardial points lie on the outer ellipse (semi-axes 92, 52 about u = 20), hinges at the annulus line
    r = ((uv[:, 0] - 20) / 92) ** 2 + (uv[:, 1] / 52) ** 2
    np.testing.assert_allclose(r, 1.0, atol=0.03)
    np.testing.assert_allclose(uv[[0, 19], 0], 0.0, atol=0.6)
    assert uv[0, 1] < 0 < uv[19, 1]


@pytest.mark.parametrize(
    "angle,scale,base",
    [
        (17.0, 1.0, (128.0, 200.0)),
        (-28.0, 1.0, (120.4, 190.7)),
        (0.0, 0.8, (130.3, 180.6)),
        (0.0, 1.15, (127.6, 214.2)),
        (31.0, 0.9, (135.2, 205.1)),
    ],
)
def test_keypoints_move_with_the_shape(big, angle, scale, base):
    """Keypoints of a rotated / translated / scaled label map = the same transform of the original keypoints."""
    ref = extract_keypoints(big, 40)
    moved = extract_keypoints(a4c_labels((256, 256), base=base, angle_deg=angle, scale=scale, **BIG), 40)
    expected = to_image(to_shape(ref, REF_BASE), base, angle, scale)
    err = np.linalg.norm(moved - expected, axis=1)
    assert err.mean() < 0.5, err
    assert err.max() < 1.5, err


def test_keypoints_to_mask_redraws_the_segmentation(big):
    k = extract_keypoints(big, 40)
    m = keypoints_to_mask(k, big.shape)
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1, 2}
    for label, min_dice in ((1, 0.985), (2, 0.94)):
        a, b = m == label, big == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > min_dice
    only_endo = keypoints_to_mask(k[:20], big.shape)
    assert set(np.unique(only_endo)) == {0, 1}
    np.testing.assert_array_equal(only_endo == 1, m == 1)


def test_extraction_from_its_own_mask_is_stable(big):
    k = extract_keypoints(big, 20)
    again = extract_keypoints(keypoints_to_mask(k, big.shape), 20)
    assert np.linalg.norm(again - k, axis=1).max() < 1.5


def test_holes_islands_and_extra_labels_do_not_matter():
    lab = a4c_labels()
    ref = extract_keypoints(lab, 40)
    dirty = lab.copy()
    dirty[60:63, 60:63] = 0  # hole in the cavity
    dirty[70, 64] = 2  # myocardium speck inside the cavity
    dirty[5:10, 5:10] = 1  # cavity island far away
    dirty[110:115, 5:10] = 2  # myocardium island
    dirty[5:9, 110:120] = 3  # LA island
    dirty[dirty == 0] = 6  # phantom "other tissue" instead of background
    np.testing.assert_allclose(extract_keypoints(dirty, 40), ref, atol=1e-9)


def test_keeps_the_cavity_next_to_the_atrium():
    lab = np.pad(a4c_labels(), ((0, 0), (0, 64)))
    ref = extract_keypoints(lab, 20)
    assert (lab == 1).sum() < 50 * 50
    lab[2:52, 130:180] = 1  # a larger "cavity" away from the LA
    np.testing.assert_allclose(extract_keypoints(lab, 20), ref, atol=1e-9)


def test_fallbacks_without_atrium_or_myocardium():
    lab = a4c_labels()
    ref = extract_keypoints(lab, 20)
    no_la = np.where(lab == 3, 0, lab)
    no_myo = np.where(lab == 2, 0, lab)
    cavity_only = np.where(lab == 1, 1, 0)
    for other, tol in ((no_la, 0.8), (no_myo, 0.8), (cavity_only, 1.5)):
        assert np.linalg.norm(extract_keypoints(other, 20) - ref, axis=1).max() < tol


def test_cavity_cut_by_the_sector_edge():
    lab = a4c_labels()
    cut = lab.copy()
    cut[:, 80:] = 0  # the lateral wall is outside the sector
    k = extract_keypoints(cut, 20)
    # the hinges stay at the basal corners of the cut cavity (on the annulus, y ~ 100)
    assert abs(k[0, 1] - 100) < 1.5 and abs(k[19, 1] - 100) < 1.5
    assert k[19, 0] > 78
    edge = lab[:, 40:]  # the septal side touches the image border
    k = extract_keypoints(edge, 40)
    assert np.all(np.isfinite(k)) and k[:, 0].min() >= -0.6


@pytest.mark.parametrize(
    "labels,n,message",
    [
        (np.zeros((64, 64), np.uint8), 20, "no LV cavity"),
        (np.where(a4c_labels() == 1, 0, a4c_labels()), 20, "no LV cavity"),
        (np.where(a4c_labels() == 2, 0, a4c_labels()), 40, "myocardium"),
        (np.zeros((2, 64, 64), np.uint8), 20, "2-D"),
        (a4c_labels().astype(float) + 0.5, 20, "integer"),
        ((np.arange(64 * 64).reshape(64, 64) == 100).astype(np.uint8), 20, "too small"),
        (a4c_labels(), 30, "20 or 40"),
    ],
)
def test_bad_label_maps_fail_clearly(labels, n, message):
    with pytest.raises(InputError, match=message):
        extract_keypoints(labels, n)


def test_bad_keypoints_for_masks():
    with pytest.raises(EchoKDMError, match="shape"):
        keypoints_to_mask(np.zeros((7, 2)), (32, 32))
    with pytest.raises(EchoKDMError, match="non-finite"):
        keypoints_to_mask(np.full((20, 2), np.nan), (32, 32))
