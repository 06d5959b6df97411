"""The annulus constraint: cavity that leaks past the mitral annulus goes to the LA, nothing else changes."""

import numpy as np
import pytest
from a4c_shapes import a4c_labels, to_shape

from echokdm.models.annulus import MAX_CUT_FRACTION, annulus_line, clip_at_annulus

POSES = [dict(), dict(angle_deg=30.0, base=(70.0, 96.0)), dict(angle_deg=-25.0, scale=1.3, base=(60.0, 110.0))]


def _u(shape, pose):
    """Long-axis coordinate (towards the apex, 0 at the annulus) of every pixel of the pose."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    kw = {k: pose[k] for k in ("base", "angle_deg", "scale") if k in pose}
    return to_shape(np.stack([xx, yy], -1), **kw)[..., 0]


@pytest.mark.parametrize("pose", POSES)
def test_clean_shape_is_left_alone(pose):
    labels = a4c_labels((160, 160), **pose)
    assert clip_at_annulus(labels) is labels


@pytest.mark.parametrize("pose", POSES)
def test_leak_into_the_atrium_goes_back_to_the_atrium(pose):
    labels = a4c_labels((160, 160), drop=2.0, **pose)
    u = _u(labels.shape, pose)
    leaked = labels.copy()
    leaked[(labels == 3) & (u > -8 * pose.get("scale", 1.0))] = 1  # 8 px of atrium taken by the cavity
    out = clip_at_annulus(leaked)
    scale = pose.get("scale", 1.0)
    # nothing of the cavity stays past the myocardium's basal ends (drop) plus the tolerance and a pixel of grid
    assert u[out == 1].min() > -(2.0 * scale + 1.0 + 1.5)
    # what was cut went to the atrium; myocardium and the cavity above the annulus are untouched
    assert np.array_equal(out == 2, labels == 2)
    assert np.all(out[labels == 1] == 1)
    assert np.all(out[(leaked == 1) & (out != 1)] == 3)
    assert (out == 1).sum() < (leaked == 1).sum()


def test_line_ends_are_the_walls_basal_ends():
    labels = a4c_labels((160, 160), b=20.0, wall=6.0, drop=2.0)  # annulus midpoint at (x 64, y 100)
    p, q, normal = annulus_line(labels)
    ys = sorted([p[0], q[0]])
    xs = sorted([p[1], q[1]])
    assert ys[0] >= 100 and ys[1] <= 103  # both ends 2 px below the annulus
    assert xs[0] < 64 - 18 and xs[1] > 64 + 18  # one on each wall
    assert normal[0] > 0.99  # towards the base: down the image


def test_no_myocardium_or_a_failed_axis_changes_nothing():
    labels = a4c_labels((160, 160), myo=False)
    assert clip_at_annulus(labels) is labels
    # a cavity mostly past the line (a wrong axis, not a leak): a cut above MAX_CUT_FRACTION is not made
    labels = a4c_labels((160, 160), drop=2.0)
    u = _u(labels.shape, {})
    big = labels.copy()
    big[(labels == 3) | ((u < 0) & (u > -40) & (labels == 0))] = 1
    assert (big == 1).sum() * MAX_CUT_FRACTION < ((big == 1) & (u < -3.5)).sum()
    assert clip_at_annulus(big) is big


def test_a_broken_wall_gives_no_annulus():
    """Dropout ends the lateral wall half-way up: its end is no hinge, and the cavity is left whole."""
    labels = a4c_labels((160, 160), drop=2.0)
    u = _u(labels.shape, {})
    broken = labels.copy()
    broken[(labels == 2) & (u < 30) & (np.mgrid[:160, :160][1] > 64)] = 0
    leaked = broken.copy()
    leaked[(labels == 3) & (u > -8)] = 1
    assert annulus_line(leaked) is None
    assert clip_at_annulus(leaked) is leaked
