"""The phantom's renderers: one interface, same ground truth, the scatter renderer unchanged, and the cole
renderer's physics in miniature (pulse length, beam width, Rayleigh speckle)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pydicom
import pytest
import torch
from monai.networks.blocks import Warp
from scipy import ndimage

from echokdm.cli import main
from echokdm.errors import InputError
from echokdm.outputs import OutputDir
from echokdm.phantom import PhantomParams, sample_params, simulate
from echokdm.phantom.cole_probe import ColeProbe
from echokdm.phantom.fan import Fan
from echokdm.phantom.imaging import EchoModel, Probe
from echokdm.phantom.layouts import write_camus_patient, write_dicom_loop, write_echonet_video
from echokdm.phantom.motion import Deformation, Valves
from echokdm.phantom.render_cole import CELL_SCATTERERS, _jittered_grid
from echokdm.phantom.simulate import check_loop, frame_times

SMALL = dict(size=112, frames=12, n_beats=1)
FAST_PROBE = dict(frequency_mhz=2.0, n_beams=64)  # the cheapest cole probe: a fast test
SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "phantom.schema.json").read_text())


@pytest.fixture(scope="module")
def pair():
    """The same subject under both renderers."""
    return {r: simulate(sample_params(8, renderers=(r,), **SMALL, **FAST_PROBE)) for r in ("scatter", "cole")}


def test_both_renderers_show_the_same_ground_truth(pair):
    a, b = pair["scatter"], pair["cole"]
    assert a.params["renderer"] == "scatter" and b.params["renderer"] == "cole"
    assert a.frames.shape == b.frames.shape == (12, 112, 112) and b.frames.dtype == np.float32
    for name in ("labels", "ddf_from_ed", "ddf_to_next", "sector_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.ed, a.es, a.ef) == (b.ed, b.es, b.ef)
    f, sector = b.frames, b.sector_mask
    assert 0.0 <= f.min() and f.max() <= 1.0 and not f[:, ~sector].any()
    lab = b.labels[b.ed[0]]
    myo, cavity = f[b.ed[0]][lab == 2].mean(), f[b.ed[0]][lab == 1].mean()
    assert myo > 2.0 * cavity > 0.0  # the walls are brighter than the blood
    assert not np.array_equal(a.frames, b.frames)


def test_cole_is_deterministic_and_its_speckle_follows_the_motion(pair):
    again = simulate(sample_params(8, renderers=("cole",), **SMALL, **FAST_PROBE))
    np.testing.assert_array_equal(pair["cole"].frames, again.frames)
    lp = pair["cole"]
    warp = Warp(mode="bilinear", padding_mode="border")
    comp, raw = [], []
    for t in range(lp.frames.shape[0] - 1):
        d = lp.ddf_to_next[t]
        myo = ndimage.binary_erosion(lp.labels[t + 1] == 2, iterations=2) & (np.hypot(*d) > 0.5)
        if myo.sum() < 30:
            continue
        w = warp(torch.from_numpy(lp.frames[t][None, None]), torch.from_numpy(d[None]))[0, 0].numpy()
        comp.append(np.corrcoef(w[myo], lp.frames[t + 1][myo])[0, 1])
        raw.append(np.corrcoef(lp.frames[t][myo], lp.frames[t + 1][myo])[0, 1])
    assert len(comp) >= 3
    assert np.mean(comp) > np.mean(raw) + 0.05  # the speckle is carried by the exact motion


def test_sample_params_draws_scatter_by_default_and_cole_when_asked():
    for seed in (0, 1, 2):
        default, cole = sample_params(seed), sample_params(seed, renderers=("cole",))
        assert default.renderer == "scatter" and cole.renderer == "cole"
        assert 1.5 <= cole.frequency_mhz <= 5.0 and 64 <= cole.n_beams <= 256
        assert 15.99 <= cole.focus_mm / cole.f_number <= 26.01  # aperture (f_number is rounded)
        # only the probe's frequency depends on the renderer: the subject and the rest are the same
        same = {k: v for k, v in default.to_dict().items() if k not in ("renderer", "frequency_mhz")}
        assert same == {k: v for k, v in cole.to_dict().items() if k not in ("renderer", "frequency_mhz")}
    drawn = {sample_params(s, renderers=("scatter", "cole")).renderer for s in range(12)}
    assert drawn == {"scatter", "cole"}
    for bad in (("echo",), ()):
        with pytest.raises(InputError, match="renderer"):
            sample_params(0, renderers=bad)
    with pytest.raises(InputError, match="renderer"):
        sample_params(0, renderer="fresnel")


def test_scatter_renderer_reproduces_the_original_image_pipeline():
    """The renderer interface changed nothing: drive EchoModel as simulate() did before the split."""
    p = sample_params(3, size=96, frames=6, n_beats=1, ui=False)
    loop = simulate(p)
    anat, cycle = check_loop(p)
    deform, probe = Deformation(anat, cycle), Probe(p)
    rng = np.random.default_rng([p.seed, 0xEC0])
    model = EchoModel(p, anat, probe, rng)
    valves = Valves(anat, rng, density=2.0 * model.density50)
    moving = deform.in_box(model.U, model.V)
    sx, sy = anat.to_image(model.U[~moving], model.V[~moving])
    amp = np.concatenate([model.amp[moving], model.amp[~moving]])
    blood = np.flatnonzero(np.concatenate([model.blood[moving], model.blood[~moving]]))
    hinges = np.concatenate([anat.mitral_hinges(), anat.tricuspid_hinges()])
    st = cycle.state(frame_times(p))
    for t in range(p.n_frames):
        c, e, frame_rng = float(st["c"][t]), float(st["e"][t]), np.random.default_rng([p.seed, 0xF0, t])
        xm, ym = anat.to_image(*deform.forward(model.U[moving], model.V[moving], c, e, inside=True))
        hu, hv = deform.forward(hinges[:, 0], hinges[:, 1], c, e)
        lu, lv, la = valves.points(np.stack([hu, hv], 1), float(st["o_mv"][t]), float(st["o_tv"][t]))
        xl, yl = anat.to_image(lu, lv)
        ph = np.concatenate([
            model.phase(np.hypot(xm, ym), model.r[moving]), model.phase(model.r[~moving], model.r[~moving]),
            model.two_k * np.hypot(xl, yl),
        ])
        ph[blood] += frame_rng.uniform(0, 2 * np.pi, blood.size)
        echo = model.beamform(
            np.concatenate([xm, sx, xl]),
            np.concatenate([ym, sy, yl]),
            np.concatenate([amp, la * model.leaflet_amp]),
            ph,
        )
        if t == 0:
            model.calibrate(echo, loop.labels[0] == 2)
        np.testing.assert_array_equal(model.to_image(echo, frame_rng), loop.frames[t])


# ---- cole physics in miniature --------------------------------------------------------------------------
def _probe(**kw) -> ColeProbe:
    p = PhantomParams(seed=0, renderer="cole", depth_mm=160.0, sector_deg=60.0, **kw)
    return ColeProbe(p, Fan(p))


def _point_envelope(pr: ColeProbe, r: float, theta: float = 0.0) -> np.ndarray:
    return pr.envelope(pr.rf(pr.project(np.array([r]), np.array([theta]), np.array([1.0]))))


def _fwhm(profile: np.ndarray, step: float) -> float:
    """Full width at half maximum of a single-peaked profile, edges interpolated linearly."""
    half = 0.5 * profile.max()
    above = np.flatnonzero(profile >= half)
    i, j = above[0], above[-1]
    left = i - (profile[i] - half) / (profile[i] - profile[i - 1])
    right = j + (profile[j] - half) / (profile[j] - profile[j + 1])
    return float(right - left) * step


@pytest.mark.parametrize("f0, bandwidth", [(2.0, 0.4), (2.0, 0.8), (3.5, 0.6)])
def test_point_scatterer_axial_width_is_set_by_the_bandwidth(f0, bandwidth):
    pr = _probe(frequency_mhz=f0, bandwidth=bandwidth, n_beams=65)
    env = _point_envelope(pr, 80.0)
    line = env[pr.n_b // 2]
    fwhm_factor = 2.0 * math.sqrt(2.0 * math.log(2.0))
    sigma_t = 1.0 / (2.0 * math.pi * bandwidth * f0 / fwhm_factor)  # Gaussian spectrum, -6 dB width B f0
    expected = fwhm_factor * 1.54 * sigma_t / 2.0  # two-way: range = c t / 2
    assert _fwhm(line, pr.dr) == pytest.approx(expected, rel=0.05)
    assert abs(int(np.argmax(line)) * pr.dr - 80.0) <= pr.dr  # at its range


def test_point_scatterer_lateral_width_grows_with_depth_and_f_number():
    def lateral_mm(f_number: float, r: float) -> float:
        pr = _probe(frequency_mhz=2.5, f_number=f_number, focus_mm=60.0, n_beams=512)
        env = _point_envelope(pr, r)
        across = env[:, int(round(r / pr.dr))]
        return _fwhm(across, pr.dtheta) * r

    at_focus, beyond = lateral_mm(3.0, 60.0), lateral_mm(3.0, 140.0)
    assert beyond > 1.5 * at_focus
    lam = 1.54 / 2.5
    assert at_focus == pytest.approx(lam * 3.0, rel=0.35)  # ~ lambda x F-number at the focus
    assert lateral_mm(4.5, 60.0) > 1.3 * at_focus


def test_speckle_of_a_uniform_medium_is_rayleigh():
    pr = _probe(frequency_mhz=2.5, bandwidth=0.6, n_beams=128)
    axial, lateral = pr.resolution_cell()
    rng = np.random.default_rng(0)
    r, t = _jittered_grid(
        rng, (1.0, 160.0), (-0.6, 0.6), axial / math.sqrt(CELL_SCATTERERS), lateral / math.sqrt(CELL_SCATTERERS)
    )
    env = pr.envelope(pr.rf(pr.project(r, t, rng.standard_normal(r.size))))
    e = env[32:96, int(60 / pr.dr) : int(120 / pr.dr)]
    e = e / e.mean(axis=0, keepdims=True)  # the beam profile's depth dependence out
    snr = e.mean() / e.std()
    assert snr == pytest.approx(math.sqrt(math.pi / (4.0 - math.pi)), abs=0.1)  # 1.91


def test_layout_writers_take_a_cole_loop(pair, tmp_path):
    lp = pair["cole"]
    out = OutputDir(tmp_path / "out")
    write_dicom_loop(out, "cole", lp, "test")
    ds = pydicom.dcmread(tmp_path / "out" / "cole.dcm")
    assert int(ds.NumberOfFrames) == lp.frames.shape[0]
    write_camus_patient(out, 1, lp, "test")
    assert (tmp_path / "out" / "patient0001" / "patient0001_4CH_half_sequence.nii.gz").exists()
    write_echonet_video(out, lp, "test")
    cap = cv2.VideoCapture(str(next((tmp_path / "out" / "Videos").glob("*.avi"))))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == lp.frames.shape[0]


def test_cli_draws_the_renderers_asked_for(tmp_path, capsys):
    out = tmp_path / "mixed"
    args = ["phantom", "--out", str(out), "--layout", "echonet", "--n", "2", "--frames", "12", "--seed", "4"]
    assert main([*args, "--renderer", "scatter,cole"]) == 0
    sidecars = [json.loads(p.read_text()) for p in sorted((out / "Sidecars").glob("*.json"))]
    # seeds 4 and 5 of the train split draw one each
    assert {s["params"]["renderer"] for s in sidecars} == {"scatter", "cole"}
    for s in sidecars:
        jsonschema.validate(s, SCHEMA)
    bad = tmp_path / "bad"
    assert main(["phantom", "--out", str(bad), "--renderer", "cole,fresnel"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fresnel" in err and not bad.exists()
