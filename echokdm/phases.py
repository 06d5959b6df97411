"""Cardiac phases from the LV cavity area (or volume) curve of a loop: ED and ES of every beat, heart rate.

ED is the frame of maximum LV size in a beat and ES the frame of minimum size (``data_specs/conventions.md``);
of several frames with the same extreme value (an isovolumic phase in a pixel-count curve) the first is
taken, as ED and ES begin those phases.
The curve is smoothed lightly; its period is estimated from the autocorrelation so that only one ED and
one ES are found per beat (a diastasis plateau or atrial kick does not count twice). Extremes at the first
or last frame count only when the curve is flat there and at the level of the other EDs (ESs), so a loop
that starts or stops mid-systole does not report a false ED or ES at its edge (see ``_keep_edges``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from echokdm.errors import InputError

#: Gaussian sigma (ms) of the area curve's smoothing before its extremes are sought: against flicker of the
#: masks, shorter than the isovolumic phases, so frames 100 ms or more apart (8 frames/s clips) stay apart
SMOOTH_MS = 20.0
#: the shortest ED -> ES interval counted as a beat: systole lasts 250-400 ms in adults and stays above ~200 ms
#: even at 180 beats/min; a shorter fall of the area curve is a dip within a phase, not a systole
MIN_SYSTOLE_MS = 180.0


@dataclass
class Phases:
    """Phases found in one loop.

    Args:
        ed: ED frame indices, increasing.
        es: ES frame indices, increasing.
        beats: (ED, ES) pairs where the ES follows the ED within the same beat (at least
            :data:`MIN_SYSTOLE_MS` later when the frame time is known).
        period_frames: beat length in frames (fractional), or None when the loop shows less than a beat.
        heart_rate_bpm: 60000 / (period x frame time), or None when either is unknown.
        smoothed: (T,) the smoothed curve the extremes were found on.
    """

    ed: list[int]
    es: list[int]
    beats: list[tuple[int, int]]
    period_frames: float | None
    heart_rate_bpm: float | None
    smoothed: np.ndarray


def detect_phases(
    curve: np.ndarray,
    frame_time_ms: float | None = None,
    *,
    smooth_ms: float = SMOOTH_MS,
    min_prominence: float = 0.25,
    edge_slope: float = 0.35,
) -> Phases:
    """ED and ES frames of every beat in an LV area or volume curve.

    Args:
        curve: (T,) LV cavity area or volume per frame, T >= 3.
        frame_time_ms: time between frames; needed for the heart rate.
        smooth_ms: Gaussian sigma of the smoothing in ms; one frame when the frame time is unknown.
        min_prominence: an extreme must stand out by this fraction of the curve's range.
        edge_slope: a first/last frame counts as an extreme only if the curve's slope there is below
            this fraction of its steepest slope.

    Returns:
        The phases; ``ed`` or ``es`` is empty when the loop does not show one.

    Raises:
        InputError: fewer than 3 frames, non-finite values, or a curve that does not change.
    """
    c = np.asarray(curve, dtype=np.float64).ravel()
    if c.size < 3:
        raise InputError(f"finding ED/ES needs a loop of at least 3 frames, got {c.size}")
    if not np.all(np.isfinite(c)):
        raise InputError("the LV area curve holds non-finite values")
    span = float(c.max() - c.min())
    if span <= 1e-9 * max(1.0, float(np.abs(c).max())):
        raise InputError("the LV area does not change over the loop; ED and ES cannot be told apart")
    sigma = smooth_ms / frame_time_ms if frame_time_ms else 1.0
    s = gaussian_filter1d(c, sigma, mode="mirror") if sigma > 0.05 else c.copy()
    period0 = _autocorrelation_period(s)
    ed = _candidates(s, c, period0, min_prominence)
    es = _candidates(-s, -c, period0, min_prominence)
    steps = [float(d) for x in (ed, es) for d in np.diff([p for p in x if 0 < p < c.size - 1])]
    period = float(np.median(steps)) if steps else period0
    ed = _suppress(_keep_edges(ed, s, period, edge_slope), s, period0)
    es = _suppress(_keep_edges(es, -s, period, edge_slope), -s, period0)
    ed, es = _alternate(ed, es, s)
    steps = np.diff(ed).tolist() + np.diff(es).tolist()
    period = float(np.median(steps)) if steps else period
    beats = []
    for e in ed:
        later = [x for x in es if x > e]
        if not later or any(e < d < later[0] for d in ed):
            continue
        if not frame_time_ms or (later[0] - e) * frame_time_ms >= MIN_SYSTOLE_MS:
            beats.append((e, later[0]))
    hr = 60000.0 / (period * frame_time_ms) if period and frame_time_ms else None
    return Phases(ed=ed, es=es, beats=beats, period_frames=period, heart_rate_bpm=hr, smoothed=s)


def _autocorrelation_period(s: np.ndarray) -> float | None:
    """Lag (frames, sub-frame) of the first clear autocorrelation peak, or None."""
    x = s - s.mean()
    n = len(x)
    if n < 6:
        return None
    ac = np.array([np.dot(x[: n - k], x[k:]) / (n - k) for k in range(n - 2)]) / (np.dot(x, x) / n)
    peaks, _ = find_peaks(ac)
    peaks = [p for p in peaks if p >= 3 and ac[p] > 0.3 and n - p >= 3]
    if not peaks:
        return None
    p = peaks[0]
    a, b, c = ac[p - 1], ac[p], ac[p + 1]
    den = a - 2 * b + c
    return float(p + (0.5 * (a - c) / den if den < 0 else 0.0))


def _candidates(s: np.ndarray, raw: np.ndarray, period: float | None, min_prominence: float) -> list[int]:
    """Maxima of ``s`` (edges included): all of them at the edges, at most one per ``0.6 * period`` inside; each
    moved to the raw curve's maximum within one frame (see :func:`_refine`).

    The edge maxima are not allowed to suppress inner ones here: whether an edge frame is an extreme at all is
    decided by :func:`_keep_edges` first (a loop that starts just after ED must not lose the next beat's ED).
    """
    n = len(s)
    padded = np.pad(s, n - 1, mode="reflect")  # an extreme at an edge becomes a visible peak
    peaks, _ = find_peaks(padded, prominence=min_prominence * float(s.max() - s.min()))
    found = [int(p) - (n - 1) for p in peaks if n - 1 <= p <= 2 * (n - 1)]
    inner = _suppress([p for p in found if 0 < p < n - 1], s, period)
    return sorted({_refine(p, raw) for p in inner + [p for p in found if p in (0, n - 1)]})


def _suppress(found: list[int], s: np.ndarray, period: float | None) -> list[int]:
    """The highest of the maxima ``found`` at least ``0.6 * period`` apart (all of them without a period)."""
    if period:
        kept: list[int] = []
        for p in sorted(found, key=lambda i: -s[i]):
            if all(abs(p - q) >= 0.6 * period for q in kept):
                kept.append(p)
        found = kept
    return sorted(found)


def _keep_edges(found: list[int], s: np.ndarray, period: float | None, edge_slope: float) -> list[int]:
    """Keep a maximum at the first or last frame only where the curve is flat (slope below ``edge_slope``
    of the steepest) or as high as the other maxima (within 5% of the curve's range), never far below them,
    and, when the period is known, only where another maximum repeats a whole number of periods away (within
    one frame or a tenth of the period: ES and ED plateaus are broad, and beats vary)."""
    n = len(s)
    inner = [p for p in found if 0 < p < n - 1]
    span = float(s.max() - s.min())
    level = float(np.median(s[inner])) if inner else float(s.max())
    steep = float(np.abs(np.diff(s)).max())
    keep = []
    for p in found:
        if p in (0, n - 1):
            slope = abs(s[1] - s[0]) if p == 0 else abs(s[-1] - s[-2])
            at_level = s[p] >= level - 0.05 * span  # as high as the other maxima: an extreme even where
            # coarse sampling (8 frames/s) makes the curve steep next to it
            if (slope > edge_slope * steep and not at_level) or s[p] < level - 0.15 * span:
                continue
            if inner and period:
                q = min(inner, key=lambda i: abs(i - p))
                if abs(q + round((p - q) / period) * period - p) > max(1.0, 0.1 * period):
                    continue
        keep.append(p)
    return keep


def _refine(p: int, raw: np.ndarray) -> int:
    """The raw curve's maximum within one frame of ``p``; of equal values, the first frame of the run
    (an isovolumic phase begins at ED and at ES)."""
    lo, hi = max(0, p - 1), min(len(raw), p + 2)
    q = lo + int(np.argmax(raw[lo:hi]))
    while q > 0 and raw[q - 1] == raw[q]:
        q -= 1
    return q


def _alternate(ed: list[int], es: list[int], s: np.ndarray) -> tuple[list[int], list[int]]:
    """Enforce ED, ES, ED, ... order: of two EDs (ESs) in a row keep the larger (smaller)."""
    events = sorted([(i, "ED") for i in ed] + [(i, "ES") for i in es])
    out: list[tuple[int, str]] = []
    for i, kind in events:
        if out and out[-1][1] == kind:
            j = out[-1][0]
            better = s[i] > s[j] if kind == "ED" else s[i] < s[j]
            if better:
                out[-1] = (i, kind)
            continue
        if out and out[-1][0] == i:
            continue
        out.append((i, kind))
    return [i for i, k in out if k == "ED"], [i for i, k in out if k == "ES"]
