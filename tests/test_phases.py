"""ED/ES detection on synthetic LV area curves: 1-3 beats, loops starting mid-cycle, noise."""

import numpy as np
import pytest
from a4c_shapes import contraction

from echokdm.errors import InputError
from echokdm.phases import detect_phases


def _curve(n, period, phase0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return 1500.0 - 500.0 * contraction(n, period, phase0) + noise * rng.standard_normal(n)


def _truth(period, phase0, systole=0.35):
    """True (fractional) ED and ES times of the synthetic curve."""
    ed = np.array([k * period - phase0 for k in range(-1, 8)])
    return ed, ed + systole * period


def _match(found, truth, n, tol=1.0):
    """Every true event inside the loop is found within ``tol`` frames, and every detection is within
    ``tol`` of a true event (which may lie just outside the loop)."""
    inside = [t for t in truth if 0 <= t <= n - 1]
    assert all(min(abs(np.asarray(found) - t), default=np.inf) <= tol for t in inside), (found, inside)
    assert all(np.abs(truth - f).min() <= tol for f in found), (found, truth)


@pytest.mark.parametrize(
    "n,period,phase0,noise",
    [
        (25, 20.0, 0.0, 0.0),  # one beat and a bit, starting at ED
        (45, 20.0, 0.0, 5.0),  # two beats
        (65, 21.0, 7.0, 5.0),  # three beats, starting just at ES
        (70, 22.5, 13.0, 8.0),  # three beats, starting in diastole
        (50, 16.3, 4.2, 5.0),  # fractional period, mid-systole start
        (22, 20.0, 10.0, 3.0),  # one beat starting mid-diastole
        (15, 20.0, 0.0, 0.0),  # less than a beat: ED then ES
    ],
)
def test_ed_es_within_one_frame(n, period, phase0, noise):
    p = detect_phases(_curve(n, period, phase0, noise), frame_time_ms=20.0)
    ed, es = _truth(period, phase0)
    _match(p.ed, ed, n)
    _match(p.es, es, n)
    for a, b in p.beats:
        assert 0 < b - a < period
    if len(p.ed) + len(p.es) >= 3:
        assert p.period_frames == pytest.approx(period, abs=1.0)
        assert p.heart_rate_bpm == pytest.approx(60000 / (period * 20.0), rel=0.06)


@pytest.mark.parametrize("heart_period_ms,phase0", [(900.0, 0.0), (1000.0, 2.5), (750.0, 4.0)])
def test_16_frame_clips_at_8_frames_per_second(heart_period_ms, phase0):
    """EchoNet-style clips: 16 frames 125 ms apart (2 s, about two beats); the smoothing is 20 ms, so the
    extremes of frames 125 ms apart are not averaged away."""
    period = heart_period_ms / 125.0
    p = detect_phases(_curve(16, period, phase0), frame_time_ms=125.0)
    ed, es = _truth(period, phase0)
    _match(p.ed, ed, 16)
    _match(p.es, es, 16)
    assert p.beats and p.heart_rate_bpm == pytest.approx(60000 / heart_period_ms, rel=0.15)


def test_no_false_edge_extremes_mid_systole():
    # starts mid-systole (falling) and stops mid-systole: no ED/ES at either edge
    p = detect_phases(_curve(42, 20.0, 3.5), 25.0)
    assert 0 not in p.ed + p.es and 41 not in p.ed + p.es
    _match(p.ed, _truth(20.0, 3.5)[0], 42)


def test_rejected_edge_frame_does_not_hide_the_next_ed():
    # two beats; the first frames flicker so that frame 0 shows the largest cavity, 13 frames (< 0.6 period)
    # before the real ED: the edge rule rejects frame 0 (not a period before another ED), and it must not
    # suppress that ED (nor the ES before it) either
    c = _curve(50, 25.0, 12.0)
    top, span = c.max(), np.ptp(c)
    c[0], c[1] = top + 0.1 * span, top - 0.2 * span
    p = detect_phases(c, 33.3)
    ed, es = _truth(25.0, 12.0)
    assert 0 not in p.ed
    _match(p.ed, ed, 50)
    _match(p.es[1:], es, 50)  # p.es[0] = 2 is the flicker's own dip
    assert len(p.beats) == 2


def test_last_frame_es_a_period_after_a_broad_es_plateau():
    # the SonoSite sample's LV area curve as a fine-tuned segmenter read it (30 frames, 33.3 ms): the first ES
    # plateau spans frames 3-7, the loop ends in the second ES, 26 frames after its first frame; the beat is
    # ED 20 -> ES 29, and the last frame must count although it is 1.4 frames from frame 3 + one period
    curve = [0.888, 0.802, 0.666, 0.614, 0.644, 0.623, 0.647, 0.651, 0.697, 0.783, 0.848, 0.851, 0.844, 0.911, 0.892,
             0.889, 0.899, 0.89, 0.888, 0.959, 1.0, 0.983, 0.992, 0.947, 0.878, 0.823, 0.784, 0.71, 0.706, 0.666]
    p = detect_phases(np.array(curve), 33.333)
    assert p.ed == [20] and p.es == [3, 29] and p.beats == [(20, 29)]


def test_heart_rate_needs_frame_time():
    p = detect_phases(_curve(45, 20.0, 0.0))
    assert p.heart_rate_bpm is None and p.period_frames == pytest.approx(20.0, abs=0.5)


def test_diastasis_bump_is_not_a_second_beat():
    c = _curve(60, 30.0, 0.0)
    t = np.arange(60)
    c += 60 * np.exp(-0.5 * ((np.mod(t, 30) - 20) / 1.5) ** 2)  # a small bump during filling
    p = detect_phases(c, 20.0)
    _match(p.ed, _truth(30.0, 0.0)[0], 60)
    _match(p.es, _truth(30.0, 0.0)[1], 60)
    assert len(p.es) == 2 and 20 not in p.ed and 50 not in p.ed


def test_a_dip_shorter_than_a_systole_is_not_a_beat():
    """Half a second of a real loop (the SonoSite sample's 112-px crop, frames 0-15 at 30 frames/s): ES at frame 4,
    filling to frame 9, then a dip over 167 ms in diastasis. Its fall is no systole (MIN_SYSTOLE_MS): no beat, and
    the ES stays found. (At 8 frames/s a 2-frame systole, 250 ms, still counts: the 8-frames/s clip test.)"""
    clip = [2383, 2150, 2043, 1945, 1923, 1949, 1972, 1936, 2773, 3022, 2979, 2971, 2970, 2811, 2650, 2699]
    p = detect_phases(np.array(clip, float), frame_time_ms=33.3)
    assert p.beats == [] and 4 in p.es
    assert detect_phases(np.array(clip, float)).beats  # frame time unknown: no duration to check


@pytest.mark.parametrize(
    "curve,message", [([1.0, 2.0], "at least 3"), ([1.0, np.nan, 2.0], "non-finite"), ([5.0] * 10, "does not change")]
)
def test_bad_curves(curve, message):
    with pytest.raises(InputError, match=message):
        detect_phases(curve)
