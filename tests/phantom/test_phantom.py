"""The phantom simulator: parameters, determinism, shapes, exact labels, volumes, motion and speckle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.networks.blocks import Warp
from scipy import ndimage

from echokdm.errors import InputError
from echokdm.phantom import PhantomParams, area_length_volume, sample_params, simulate, split_seeds
from echokdm.phantom.anatomy import Anatomy
from echokdm.phantom.motion import CardiacCycle, Deformation

SMALL = dict(size=112, frames=24)


@pytest.fixture(scope="module")
def loop():
    return simulate(sample_params(3, **SMALL))


@pytest.fixture(scope="module")
def loop128():
    return simulate(sample_params(7, size=128, frames=40, n_beats=1))


def test_sample_params_is_deterministic_and_overridable():
    a, b = sample_params(11), sample_params(11)
    assert a == b
    c = sample_params(11, heart_rate_bpm=90.0)
    assert c.heart_rate_bpm == 90.0 and c.target_ef == a.target_ef and c.lv_length_mm == a.lv_length_mm
    assert sample_params(12) != a
    d = sample_params(11, ef_range=(30, 31))
    assert 30 <= d.target_ef <= 31
    json.dumps(a.to_dict())


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(target_ef=95.0), "outside 5-90"),
        (dict(target_ef=2.0), "outside 5-90"),
        (dict(ef_range=(10, 95)), "EF range"),
        (dict(size=40), "too small"),
        (dict(size=64, depth_mm=200.0, sector_deg=90.0), "too small for the anatomy"),
        (dict(bogus=1), "unknown phantom parameter"),
        (dict(depth_mm=100.0), "too shallow"),
        (dict(frames=1), "at least 2"),
    ],
)
def test_bad_parameters_raise_one_clear_error(kwargs, words):
    with pytest.raises(InputError, match=words):
        sample_params(0, **kwargs)


def test_split_seeds_are_disjoint():
    tr, va, te = (set(split_seeds(s, 500)) for s in ("train", "val", "test"))
    assert len(tr) == len(va) == len(te) == 500
    assert not (tr & va or tr & te or va & te)
    assert split_seeds("val", 3, start=10) == split_seeds("val", 13)[10:]
    for bad in (("dev", 3), ("train", 0)):
        with pytest.raises(InputError):
            split_seeds(*bad)


def test_simulate_is_deterministic(loop):
    again = simulate(sample_params(3, **SMALL))
    for name in ("frames", "labels", "ddf_from_ed", "ddf_to_next"):
        np.testing.assert_array_equal(getattr(loop, name), getattr(again, name))
    assert (loop.ed, loop.es, loop.ef) == (again.ed, again.es, again.ef)


def test_shapes_dtypes_and_conventions(loop):
    T, H, W = loop.frames.shape
    assert (T, H, W) == (24, 112, 112)
    assert loop.frames.dtype == np.float32 and 0.0 <= loop.frames.min() and loop.frames.max() <= 1.0
    assert loop.labels.dtype == np.uint8 and loop.labels.shape == (T, H, W) and loop.labels.max() <= 6
    for d in (loop.ddf_from_ed, loop.ddf_to_next):
        assert d.dtype == np.float32 and d.shape == (T, 2, H, W)
    assert loop.sector_mask.dtype == bool and loop.sector_mask.shape == (H, W)
    assert not loop.labels[:, ~loop.sector_mask].any()
    assert np.all(loop.ddf_from_ed[loop.ed[0]] == 0) and np.all(loop.ddf_to_next[-1] == 0)
    assert loop.frames[:, loop.sector_mask].mean() > 0.02
    assert loop.spacing_mm[0] == loop.spacing_mm[1] > 0 and loop.frame_time_ms > 0
    assert 0 < loop.esv < loop.edv
    json.dumps(loop.params)


def test_labels_form_a_four_chamber_view(loop):
    lab = loop.labels[loop.ed[0]]
    present = set(np.unique(lab))
    assert {1, 2, 3, 4, 5, 6} <= present
    rows, cols = np.indices(lab.shape)
    centre = {k: (rows[lab == k].mean(), cols[lab == k].mean()) for k in (1, 3, 4, 5)}
    assert centre[3][0] > centre[1][0] and centre[5][0] > centre[4][0]  # atria below ventricles
    assert centre[4][1] < centre[1][1] and centre[5][1] < centre[3][1]  # right heart on the screen left
    # the LV cavity touches only myocardium and the LA (mitral plane)
    for t in (loop.ed[0], loop.es[0]):
        lab = loop.labels[t]
        ring = ndimage.binary_dilation(lab == 1) & (lab != 1)
        assert set(np.unique(lab[ring])) <= {2, 3}


def test_ed_and_es_are_the_extremes_of_lv_area(loop128):
    area = (loop128.labels == 1).sum(axis=(1, 2))
    ed, es = loop128.ed[0], loop128.es[0]
    assert area[ed] >= area.max() - 2
    assert area[es] == area[ed:].min() or area[es] <= area.min() + 2
    assert ed < es


def test_recorded_ef_is_the_area_length_ef_of_the_masks(loop128):
    s = loop128.spacing_mm[0]
    mids = loop128.params["mitral_annulus_mid_px"]
    edv = area_length_volume(loop128.labels[loop128.ed[0]] == 1, np.array(mids[0]), s)[0]
    esv = area_length_volume(loop128.labels[loop128.es[0]] == 1, np.array(mids[1]), s)[0]
    assert edv == pytest.approx(loop128.edv, rel=1e-9) and esv == pytest.approx(loop128.esv, rel=1e-9)
    assert 100 * (edv - esv) / edv == pytest.approx(loop128.ef, abs=1e-6)
    assert abs(loop128.ef - loop128.params["target_ef"]) < 3.0


def test_deformation_inverse_is_exact():
    p = sample_params(5)
    d = Deformation(Anatomy(p), CardiacCycle(p))
    rng = np.random.default_rng(0)
    U, V = rng.uniform(-30, 160, 20000), rng.uniform(-100, 70, 20000)
    for c, e in ((1.0, 1.0), (0.4, 0.7), d.es_state):
        u, v = d.forward(U, V, c, e)
        U2, V2 = d.inverse(u, v, c, e)
        assert np.abs(U2 - U).max() < 1e-9 and np.abs(V2 - V).max() < 1e-9
    assert np.hypot(*(np.array(d.forward(U, V, *d.es_state)) - [U, V])).max() > 5.0  # it does move


def test_target_ef_extremes_are_reached():
    for ef in (5.0, 90.0):
        p = sample_params(2, target_ef=ef)
        d = Deformation(Anatomy(p), CardiacCycle(p))
        a0, l0 = d.lv_area_length(0.0, 0.0)
        a1, l1 = d.lv_area_length(*d.es_state)
        assert 100 * (1 - (a1 * a1 / l1) / (a0 * a0 / l0)) == pytest.approx(ef, abs=0.5)


def test_warping_ed_labels_gives_the_es_labels(loop128):
    ed, es = loop128.ed[0], loop128.es[0]
    warp = Warp(mode="nearest", padding_mode="border")
    lab = torch.from_numpy(loop128.labels[ed][None, None].astype(np.float32))
    warped = warp(lab, torch.from_numpy(loop128.ddf_from_ed[es][None]))[0, 0].numpy().round()
    target = loop128.labels[es]
    for k, floor in ((1, 0.97), (2, 0.9)):
        a, b = warped == k, target == k
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= floor
    moved = np.hypot(*loop128.ddf_from_ed[es])[target == 2].mean()
    assert moved > 2.0


def test_speckle_moves_with_the_tissue(loop128):
    warp = Warp(mode="bilinear", padding_mode="border")
    comp, raw = [], []
    for t in range(loop128.frames.shape[0] - 1):
        d = loop128.ddf_to_next[t]
        myo = ndimage.binary_erosion(loop128.labels[t + 1] == 2, iterations=2) & (np.hypot(*d) > 0.7)
        if myo.sum() < 30:
            continue
        w = warp(torch.from_numpy(loop128.frames[t][None, None]), torch.from_numpy(d[None]))[0, 0].numpy()
        b = loop128.frames[t + 1][myo]
        comp.append(np.corrcoef(w[myo], b)[0, 1])
        raw.append(np.corrcoef(loop128.frames[t][myo], b)[0, 1])
    assert len(comp) >= 3
    assert np.mean(comp) >= 0.8 and np.mean(comp) > np.mean(raw) + 0.1


def test_multiple_beats_have_one_ed_and_es_each():
    lp = simulate(sample_params(4, size=96, n_beats=2, frames=40))
    assert len(lp.ed) == len(lp.es) == 2
    assert lp.ed[0] < lp.es[0] < lp.ed[1] < lp.es[1]


def test_ui_is_burned_in_outside_the_sector_only():
    a = simulate(sample_params(6, size=128, frames=8, ui=False))
    b = simulate(sample_params(6, size=128, frames=8, ui=True))
    np.testing.assert_array_equal(a.frames[:, a.sector_mask], b.frames[:, b.sector_mask])
    assert not a.frames[:, ~a.sector_mask].any() and b.frames[:, ~b.sector_mask].max() > 0.5


def test_too_short_loop_is_refused():
    p = sample_params(0, size=96)
    with pytest.raises(InputError, match="end of systole"):
        simulate(p.replace(n_frames=2, frame_time_ms=100.0, pre_ed_frames=1))


def test_params_type_checks():
    with pytest.raises(InputError):
        PhantomParams(seed=0, hypokinesis="everywhere")
