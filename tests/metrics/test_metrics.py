"""Clinical metrics against closed forms: areas, area-length and Simpson volumes, biplane, EF, GLS, agreement."""

import numpy as np
import pytest
from a4c_shapes import a4c_labels, a4c_loop, cavity_area, cavity_long_axis, cavity_volume, to_image

from echokdm.errors import InputError
from echokdm.keypoints import extract_keypoints
from echokdm.metrics import (
    Units,
    aggregate_ef_consistency,
    agreement,
    biplane_ef,
    biplane_simpson_volume,
    ef_consistency,
    ef_from_keypoints,
    ejection_fraction,
    global_longitudinal_strain,
    measure_frame,
    measure_loop,
)


def _ellipse_keypoints(a, b, offset, base=(128.0, 200.0), angle=0.0, n=20):
    """Exact keypoints of the truncated ellipse (20 points by the keypoint rule), no rasterisation."""
    z0 = np.arccos(-offset / a)
    th = np.linspace(-z0, z0, 20001)
    u, v = offset + a * np.cos(th), b * np.sin(th)
    s = np.concatenate([[0], np.cumsum(np.hypot(np.diff(u), np.diff(v)))])
    t = np.arange(n) / (n - 1) * s[-1]  # the two sides are equally long: equal steps on each
    return to_image(np.stack([np.interp(t, s, u), np.interp(t, s, v)], 1), base, angle)


@pytest.mark.parametrize("a,b,offset", [(80, 40, 0), (80, 40, 20), (90, 35, -10)])
def test_exact_keypoints_give_closed_form_volumes(a, b, offset):
    m = measure_frame(_ellipse_keypoints(a, b, offset, angle=23.0))
    area, length = cavity_area(a, b, offset), cavity_long_axis(a, offset)
    assert m.area == pytest.approx(area, rel=2e-3)
    assert m.long_axis == pytest.approx(length, rel=2e-3)
    assert m.volume_area_length == pytest.approx(8 * area**2 / (3 * np.pi * length), rel=4e-3)
    assert m.volume_simpson == pytest.approx(cavity_volume(a, b, offset), rel=4e-3)
    if offset == 0:  # a half prolate spheroid: area-length is exact
        assert m.volume_area_length == pytest.approx(2 / 3 * np.pi * a * b * b, rel=4e-3)


@pytest.mark.parametrize("a,b,offset,angle", [(80, 40, 0, 12.0), (80, 40, 20, -25.0), (76, 34, -10, 7.0)])
def test_volumes_from_label_maps_within_one_percent(a, b, offset, angle):
    lab = a4c_labels((256, 256), a=a, b=b, offset=offset, wall=12, base=(128.3, 200.2), angle_deg=angle)
    m = measure_frame(extract_keypoints(lab, 20))
    area, length = cavity_area(a, b, offset), cavity_long_axis(a, offset)
    assert m.volume_area_length == pytest.approx(8 * area**2 / (3 * np.pi * length), rel=0.01)
    assert m.volume_simpson == pytest.approx(cavity_volume(a, b, offset), rel=0.01)


def test_units_follow_the_spacing():
    k = _ellipse_keypoints(80, 40, 20)
    px = measure_frame(k)
    mm = measure_frame(k, spacing_mm=(0.5, 0.5))
    assert mm.area == pytest.approx(px.area * 0.25 / 100)  # cm2
    assert mm.long_axis == pytest.approx(px.long_axis * 0.5)  # mm
    assert mm.volume_simpson == pytest.approx(px.volume_simpson * 0.125 / 1000)  # mL
    assert Units(True).volume == "mL" and Units(False).as_dict() == {
        "calibrated": False,
        "length": "px",
        "area": "px2",
        "volume": "px3",
    }
    # anisotropic pixels: the same ellipse drawn on a grid with dx = 2 dy measures the same
    squeezed = k.copy()
    squeezed[:, 0] = 128 + (k[:, 0] - 128) / 2
    assert measure_frame(squeezed, spacing_mm=(1.0, 2.0)).area == pytest.approx(
        measure_frame(k, (1.0, 1.0)).area, rel=1e-3
    )


def test_biplane_simpson_of_an_ellipsoid():
    a, b, c = 80.0, 40.0, 30.0
    vol = biplane_simpson_volume(_ellipse_keypoints(a, b, 0), _ellipse_keypoints(a, c, 0, angle=10.0))
    assert vol == pytest.approx(2 / 3 * np.pi * a * b * c, rel=4e-3)
    assert biplane_simpson_volume(
        _ellipse_keypoints(a, b, 0), _ellipse_keypoints(a, b, 0), (1, 1), (1, 1)
    ) == pytest.approx(measure_frame(_ellipse_keypoints(a, b, 0)).volume_simpson / 1000, rel=1e-6)
    with pytest.raises(InputError, match="both views"):
        biplane_simpson_volume(_ellipse_keypoints(a, b, 0), _ellipse_keypoints(a, c, 0), (1, 1), None)


def test_ef_and_gls_of_a_scaled_shape():
    ed = _ellipse_keypoints(80, 40, 20)
    es = 128 + 0.8 * (ed - 128), 200 + 0.8 * (ed[:, 1] - 200)
    es = np.stack([es[0][:, 0], es[1]], 1)
    # every length x 0.8: volume x 0.512 -> EF 48.8 %, GLS -20 %
    assert ef_from_keypoints(ed, es) == pytest.approx(48.8, abs=0.05)
    assert ef_from_keypoints(ed, es, method="area_length") == pytest.approx(48.8, abs=0.05)
    assert global_longitudinal_strain(ed, es) == pytest.approx(-20.0, abs=0.01)
    assert ejection_fraction(100.0, 40.0) == 60.0
    with pytest.raises(InputError, match="positive"):
        ejection_fraction(0.0, 1.0)
    with pytest.raises(InputError, match="method"):
        ef_from_keypoints(ed, es, method="teichholz")


def test_agreement_and_ef_consistency():
    g = agreement([50, 60, 40], [52, 57, 40])
    assert g.n == 3 and g.bias == pytest.approx(1 / 3) and g.mae == pytest.approx(5 / 3)
    sd = np.std([-2, 3, 0], ddof=1)
    assert g.loa_low == pytest.approx(1 / 3 - 1.96 * sd) and g.loa_high == pytest.approx(1 / 3 + 1.96 * sd)
    assert agreement([1.0, np.nan], [1.0, 2.0]).n == 1
    with pytest.raises(InputError, match="paired"):
        agreement([1, 2], [1])
    cases = [ef_consistency(55.0, 52.0, 54.0), ef_consistency(40.0, 45.0, None)]
    assert cases[0]["seg_vs_keypoints"] == 3.0 and cases[0]["keypoints_vs_truth"] == 1.0
    assert cases[1]["seg_vs_truth"] is None
    agg = aggregate_ef_consistency(cases)
    assert agg["seg_vs_keypoints"]["n"] == 2 and agg["seg_vs_keypoints"]["bias"] == pytest.approx(1.0)
    assert agg["seg_vs_truth"]["n"] == 1 and agg["seg_vs_truth"]["mae"] == pytest.approx(2.0)


def test_measure_loop_finds_beats_and_ef():
    lab = a4c_loop(45, 20.0, 0.0, shape=(192, 192), a=64, b=32, offset=16, wall=8, base=(96, 150))
    lm = measure_loop(lab, 20, spacing_mm=(0.3, 0.3), frame_time_ms=40.0)
    assert lm.phases.ed == [0, 20, 40] and lm.phases.es == [7, 27]
    assert lm.phases.heart_rate_bpm == pytest.approx(75.0)
    s = lm.summary()
    assert s["n_beats"] == 2
    assert s["ef_simpson"] == pytest.approx(48.8, abs=1.0)  # volumes scale by 0.8^3
    assert s["gls"] == pytest.approx(-20.0, abs=1.0)
    assert lm.units.calibrated and lm.beats()[0]["edv_simpson"] > lm.beats()[0]["esv_simpson"]


def test_measure_loop_errors():
    lab = a4c_loop(6, 6.0)
    with pytest.raises(InputError, match="T >= 3"):
        measure_loop(lab[:1])
    with pytest.raises(InputError, match="two different frames"):
        measure_loop(lab, ed_es=(2, 2))
    bad = lab.copy()
    bad[2][bad[2] == 1] = 0
    with pytest.raises(InputError, match=r"frame\(s\) 2"):
        measure_loop(bad)
    with pytest.raises(InputError, match="myocardium"):
        measure_loop(np.where(lab == 2, 0, lab), 40)
    with pytest.raises(InputError, match="does not change"):
        measure_loop(np.stack([lab[0]] * 4))


def test_an_ed_es_pair_is_measured_with_the_larger_cavity_as_ed():
    lab = a4c_loop(45, 20.0, 0.0, shape=(192, 192), a=64, b=32, offset=16, wall=8, base=(96, 150))
    full = measure_loop(lab, 20, spacing_mm=(0.3, 0.3)).beats()[0]
    for pair, ed_index in ((lab[[0, 7]], 0), (lab[[7, 0]], 1)):
        lm = measure_loop(pair, 20, spacing_mm=(0.3, 0.3))
        assert lm.phases.beats == [(ed_index, 1 - ed_index)]
        assert lm.summary()["ef_simpson"] == pytest.approx(full["ef_simpson"], rel=1e-9)
    given = measure_loop(lab, 20, spacing_mm=(0.3, 0.3), ed_es=(20, 27))
    assert given.phases.beats == [(20, 27)] and given.summary()["n_beats"] == 1


def test_biplane_ef_of_two_views():
    lab = a4c_loop(45, 20.0, 0.0, shape=(192, 192), a=64, b=32, offset=16, wall=8, base=(96, 150))
    a4c = measure_loop(lab[[0, 7]], 20, spacing_mm=(0.3, 0.3))
    same = biplane_ef(a4c, a4c)  # identical views: the biplane disks are the single-plane disks
    assert same["ef_biplane"] == pytest.approx(a4c.summary()["ef_simpson"], rel=1e-9)
    wide = a4c_loop(45, 20.0, 0.0, shape=(192, 192), a=64, b=40, offset=16, wall=8, base=(96, 150))
    a2c = measure_loop(wide[[0, 7]], 20, spacing_mm=(0.3, 0.3))
    both = biplane_ef(a4c, a2c)
    assert both["edv_biplane"] > same["edv_biplane"] and 0 < both["ef_biplane"] < 100
    with pytest.raises(InputError, match="spacing"):
        biplane_ef(a4c, measure_loop(wide[[0, 7]], 20))
