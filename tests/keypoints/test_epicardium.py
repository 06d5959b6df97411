"""The wall of cavity-only tracings: epicardium from a segmentation, moved with the traced endocardium."""

import numpy as np
import pytest

from echokdm.errors import InputError
from echokdm.keypoints import epicardium_from, extract_keypoints, move_epicardium, myocardial_area
from echokdm.phantom import sample_params, simulate, split_seeds


@pytest.fixture(scope="module")
def beats():
    """(ED, ES) 40 keypoints of two phantom validation loops at 96x96."""
    out = []
    for seed in split_seeds("val", 2):
        loop = simulate(sample_params(seed, size=96, n_beats=1))
        ed = int(loop.ed[0])
        es = int(next(e for e in loop.es if e > ed))
        out.append((extract_keypoints(loop.labels[ed], 40), extract_keypoints(loop.labels[es], 40)))
    return out


def test_segmented_wall_follows_a_moved_tracing(beats):
    kps = beats[0][0]
    t = np.deg2rad(12.0)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # row vectors: p @ rot
    endo = kps[:20] @ rot + (5.0, -3.0)  # the tracing: the segmented cavity turned and shifted
    out = epicardium_from(endo, kps)
    np.testing.assert_allclose(out[:20], endo)
    np.testing.assert_allclose(out[20:], kps[20:] @ rot + (5.0, -3.0), atol=1e-9)  # the wall turned with it


def test_moved_wall_keeps_its_area_and_nears_the_true_es_wall(beats):
    for ed, es in beats:
        np.testing.assert_allclose(move_epicardium(ed, ed[:20]), ed)  # no motion, no change
        moved = move_epicardium(ed, es[:20])
        np.testing.assert_allclose(moved[:20], es[:20])
        assert myocardial_area(moved) == pytest.approx(myocardial_area(ed), rel=1e-4)
        err = np.linalg.norm(moved[20:] - es[20:], axis=1).mean()
        static = np.linalg.norm(ed[20:] - es[20:], axis=1).mean()
        assert err < 0.7 * static


def test_bad_keypoints_are_refused(beats):
    with pytest.raises(InputError, match=r"\(40, 2\)"):
        move_epicardium(beats[0][0][:20], beats[0][1][:20])
    with pytest.raises(InputError, match=r"\(20, 2\)"):
        epicardium_from(beats[0][0], beats[0][0])
