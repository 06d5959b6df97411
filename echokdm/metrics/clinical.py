"""Clinical measurements of the left ventricle from contour keypoints.

All measurements start from keypoints (so they apply equally to keypoints extracted from a segmentation
and to the target keypoints that condition a prediction): the endocardial keypoints are joined by a
smooth spline (:func:`echokdm.keypoints.endocardial_contour`) and the contour is closed by the annulus
segment between the two hinges.

- long axis: from the annulus midpoint to the apex, the contour point farthest from it;
- area: enclosed by the closed contour;
- volume, single-plane area-length: ``V = 8 A^2 / (3 pi L)``;
- volume, Simpson's method of disks: the long axis is cut into ``n_disks`` (20) slices of equal height;
  each slice is a disk whose diameter is the contour's width perpendicular to the long axis at the
  slice's mid-height; biplane: elliptic disks from the A4C and A2C widths, height from the longer axis;
- EF = (EDV - ESV) / EDV in percent; GLS = relative change of the endocardial length (hinge to hinge
  over the apex) from ED to ES, in percent (negative when the ventricle shortens).

Units: with a pixel spacing (dy, dx) in mm, lengths are in mm, areas in cm^2 and volumes in mL; without,
they are in pixels, pixels^2 and pixels^3 and :attr:`Units.calibrated` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echokdm.errors import EchoKDMError, InputError
from echokdm.keypoints.contour import check_keypoints, endocardial_contour
from echokdm.labels import camus_labels
from echokdm.phases import Phases, detect_phases

N_DISKS = 20


@dataclass(frozen=True)
class Units:
    """Units of a measurement set: mm / cm^2 / mL when calibrated, else pixel units."""

    calibrated: bool

    @property
    def length(self) -> str:
        return "mm" if self.calibrated else "px"

    @property
    def area(self) -> str:
        return "cm2" if self.calibrated else "px2"

    @property
    def volume(self) -> str:
        return "mL" if self.calibrated else "px3"

    def as_dict(self) -> dict[str, object]:
        return {"calibrated": self.calibrated, "length": self.length, "area": self.area, "volume": self.volume}


@dataclass
class FrameMeasurements:
    """LV measurements of one frame (units: see :class:`Units`).

    Args:
        area: cavity area.
        long_axis: annulus midpoint to apex.
        volume_area_length: single-plane area-length volume.
        volume_simpson: single-plane Simpson volume.
        endocardial_length: contour length from hinge to hinge over the apex.
        apex: (x, y) pixels.
        annulus_midpoint: (x, y) pixels.
        disk_diameters: (n_disks,) widths perpendicular to the long axis, base to apex.
    """

    area: float
    long_axis: float
    volume_area_length: float
    volume_simpson: float
    endocardial_length: float
    apex: tuple[float, float]
    annulus_midpoint: tuple[float, float]
    disk_diameters: list[float]


def measure_frame(
    keypoints: np.ndarray, spacing_mm: Sequence[float] | None = None, n_disks: int = N_DISKS
) -> FrameMeasurements:
    """Measure one frame's LV from its keypoints.

    Args:
        keypoints: (20, 2) or (40, 2) keypoints (x, y) in pixels; the first 20 (endocardium) are used.
        spacing_mm: (dy, dx) in mm, or None for pixel units.
        n_disks: disks of the method of disks.

    Returns:
        The measurements.

    Raises:
        InputError: keypoints of the wrong shape, bad spacing, or a degenerate contour.
    """
    contour_px = endocardial_contour(check_keypoints(keypoints))
    scale = _scale(spacing_mm)
    contour = contour_px * scale  # mm (or px)
    mid = 0.5 * (contour[0] + contour[-1])
    dist = np.linalg.norm(contour - mid, axis=1)
    apex = contour[int(np.argmax(dist))]
    length = float(dist.max())
    area = _polygon_area(contour)
    if length <= 0 or area <= 0:
        raise InputError("the keypoints enclose no area; they do not describe a ventricle")
    diam = _disk_diameters(contour, mid, apex, n_disks)
    vol_simpson = float(np.sum(np.pi * (diam / 2) ** 2) * length / n_disks)
    vol_al = 8 * area**2 / (3 * np.pi * length)
    endo_len = float(np.linalg.norm(np.diff(contour, axis=0), axis=1).sum())
    a_div, v_div = (100.0, 1000.0) if spacing_mm is not None else (1.0, 1.0)
    return FrameMeasurements(
        area=area / a_div,
        long_axis=length,
        volume_area_length=vol_al / v_div,
        volume_simpson=vol_simpson / v_div,
        endocardial_length=endo_len,
        apex=tuple(float(v) for v in apex / scale),
        annulus_midpoint=tuple(float(v) for v in mid / scale),
        disk_diameters=diam.tolist(),
    )


def biplane_simpson_volume(
    keypoints_a4c: np.ndarray,
    keypoints_a2c: np.ndarray,
    spacing_a4c: Sequence[float] | None = None,
    spacing_a2c: Sequence[float] | None = None,
    n_disks: int = N_DISKS,
) -> float:
    """Biplane Simpson volume from apical four- and two-chamber keypoints of the same phase.

    ``V = sum(pi / 4 * a_i * b_i) * L / n_disks`` with ``a_i``, ``b_i`` the disk diameters of each view
    (each along its own long axis) and ``L`` the longer of the two long axes.

    Args:
        keypoints_a4c: (20 or 40, 2) A4C keypoints.
        keypoints_a2c: (20 or 40, 2) A2C keypoints.
        spacing_a4c: (dy, dx) mm of the A4C grid, or None.
        spacing_a2c: (dy, dx) mm of the A2C grid, or None.
        n_disks: disks of the method.

    Returns:
        Volume in mL when both views are calibrated, in pixels^3 when neither is.

    Raises:
        InputError: one view calibrated and the other not.
    """
    if (spacing_a4c is None) != (spacing_a2c is None):
        raise InputError("biplane volume needs the spacing of both views or of neither")
    m4 = measure_frame(keypoints_a4c, spacing_a4c, n_disks)
    m2 = measure_frame(keypoints_a2c, spacing_a2c, n_disks)
    length = max(m4.long_axis, m2.long_axis)
    vol = float(np.sum(np.pi / 4 * np.asarray(m4.disk_diameters) * np.asarray(m2.disk_diameters)) * length / n_disks)
    return vol / 1000.0 if spacing_a4c is not None else vol


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in percent, ``100 (EDV - ESV) / EDV``.

    Raises:
        InputError: a non-positive or non-finite EDV.
    """
    if not np.isfinite(edv) or edv <= 0:
        raise InputError(f"EF needs a positive end-diastolic volume, got {edv}")
    return float(100.0 * (edv - esv) / edv)


def global_longitudinal_strain(
    ed_keypoints: np.ndarray, es_keypoints: np.ndarray, spacing_mm: Sequence[float] | None = None
) -> float:
    """GLS in percent: ``100 (L_ES - L_ED) / L_ED`` of the endocardial length (negative when shortening)."""
    l_ed = measure_frame(ed_keypoints, spacing_mm).endocardial_length
    l_es = measure_frame(es_keypoints, spacing_mm).endocardial_length
    return float(100.0 * (l_es - l_ed) / l_ed)


def ef_from_keypoints(
    ed_keypoints: np.ndarray,
    es_keypoints: np.ndarray,
    spacing_mm: Sequence[float] | None = None,
    method: str = "simpson",
) -> float:
    """EF (percent) implied by ED and ES keypoints, by ``"simpson"`` or ``"area_length"`` volumes."""
    key = {"simpson": "volume_simpson", "area_length": "volume_area_length"}.get(method)
    if key is None:
        raise InputError(f"EF method must be 'simpson' or 'area_length', got {method!r}")
    ed = getattr(measure_frame(ed_keypoints, spacing_mm), key)
    es = getattr(measure_frame(es_keypoints, spacing_mm), key)
    return ejection_fraction(ed, es)


def ef_between(
    source_keypoints: np.ndarray,
    target_keypoints: np.ndarray,
    source_is_ed: bool = True,
    spacing_mm: Sequence[float] | None = None,
) -> float:
    """EF (percent, Simpson volumes) between a source and a target keypoint set, whichever of the two is ED.

    Args:
        source_keypoints: (K, 2) keypoints (x, y) in pixels of the source frame.
        target_keypoints: (K, 2) keypoints of the target frame.
        source_is_ed: the source is the end-diastolic frame (else the target is).
        spacing_mm: (dy, dx) in mm, or None.
    """
    ed, es = (source_keypoints, target_keypoints) if source_is_ed else (target_keypoints, source_keypoints)
    return ef_from_keypoints(ed, es, spacing_mm)


@dataclass
class PredictionEF:
    """EF of a prediction measured on segmentations (see :func:`prediction_ef`).

    Args:
        keypoints: per label map (the source's first) its (K, 2) keypoints, or None where it has no usable LV.
        ef: EF (percent) between the source and the last map; None when either has no keypoints.
        reason: why the first map without keypoints has none; None when all have.
    """

    keypoints: list[np.ndarray | None]
    ef: float | None
    reason: str | None


def prediction_ef(
    labels: np.ndarray, source_is_ed: bool = True, spacing_mm: Sequence[float] | None = None, n_keypoints: int = 40
) -> PredictionEF:
    """EF of a prediction: between the segmentations of its source frame and of its last predicted frame.

    Both should come from the same segmenter, each frame segmented on its own, so that the segmenter's bias
    cancels.

    Args:
        labels: (1 + N, H, W) label maps, the source frame's first, then each predicted frame's.
        source_is_ed: the source is the end-diastolic frame.
        spacing_mm: (dy, dx) in mm, or None.
        n_keypoints: 20 or 40.

    Returns:
        The keypoints of every map and the EF.
    """
    from echokdm.keypoints import extract_keypoints

    keypoints, reason = [], None
    for lab in labels:
        try:
            keypoints.append(np.asarray(extract_keypoints(camus_labels(lab), n_keypoints), dtype=np.float64))
        except EchoKDMError as e:
            keypoints.append(None)
            reason = reason or str(e)
    src, last = keypoints[0], keypoints[-1]
    ef = ef_between(src, last, source_is_ed, spacing_mm) if src is not None and last is not None else None
    return PredictionEF(keypoints, ef, reason)


def _scale(spacing_mm: Sequence[float] | None) -> np.ndarray:
    if spacing_mm is None:
        return np.ones(2)
    sp = np.asarray(spacing_mm, dtype=np.float64).ravel()
    if sp.size != 2 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing must be two positive numbers (dy, dx) in mm, got {spacing_mm}")
    return np.array([sp[1], sp[0]])  # (x, y) scale


def _polygon_area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _disk_diameters(contour: np.ndarray, mid: np.ndarray, apex: np.ndarray, n: int) -> np.ndarray:
    """Width of the closed contour perpendicular to the long axis at the mid-height of each of ``n`` slices."""
    axis = apex - mid
    length = float(np.linalg.norm(axis))
    u = axis / length
    w = np.array([-u[1], u[0]])
    rel = contour - mid
    along, across = rel @ u, rel @ w
    nxt_along, nxt_across = np.roll(along, -1), np.roll(across, -1)
    out = np.zeros(n)
    for i, z in enumerate((np.arange(n) + 0.5) * length / n):
        a0, a1 = along - z, nxt_along - z
        hit = (a0 <= 0) != (a1 <= 0)
        t = a0[hit] / (a0[hit] - a1[hit])
        xs = np.sort(across[hit] + t * (nxt_across[hit] - across[hit]))
        out[i] = float(np.sum(xs[1::2] - xs[0::2])) if len(xs) % 2 == 0 else float(xs[-1] - xs[0])
    return out


@dataclass
class LoopMetrics:
    """Keypoints, phases and measurements of one segmented loop (see :func:`measure_loop`).

    Args:
        keypoints: (T, K, 2) keypoints of every frame.
        frames: per-frame :class:`FrameMeasurements`.
        phases: ED/ES and heart rate found on the cavity area (pixel count) curve.
        units: units of the measurements.
        spacing_mm: (dy, dx) or None.
        frame_time_ms: frame time or None.
    """

    keypoints: np.ndarray
    frames: list[FrameMeasurements]
    phases: Phases
    units: Units
    spacing_mm: tuple[float, float] | None
    frame_time_ms: float | None

    @property
    def areas(self) -> np.ndarray:
        return np.array([m.area for m in self.frames])

    def beats(self) -> list[dict[str, float | int]]:
        """Per beat (ED, ES pair): volumes and EF by both methods, GLS, areas and long axes."""
        out = []
        for ed, es in self.phases.beats:
            a, b = self.frames[ed], self.frames[es]
            l_ed, l_es = a.endocardial_length, b.endocardial_length
            out.append(
                {
                    "ed": ed,
                    "es": es,
                    "edv_area_length": a.volume_area_length,
                    "esv_area_length": b.volume_area_length,
                    "ef_area_length": ejection_fraction(a.volume_area_length, b.volume_area_length),
                    "edv_simpson": a.volume_simpson,
                    "esv_simpson": b.volume_simpson,
                    "ef_simpson": ejection_fraction(a.volume_simpson, b.volume_simpson),
                    "gls": 100.0 * (l_es - l_ed) / l_ed,
                    "ed_area": a.area,
                    "es_area": b.area,
                    "ed_long_axis": a.long_axis,
                    "es_long_axis": b.long_axis,
                }
            )
        return out

    def summary(self) -> dict[str, float | int | None]:
        """Means over beats of EF (both methods) and GLS; None without a complete beat."""
        beats = self.beats()

        def mean(key: str) -> float | None:
            return float(np.mean([b[key] for b in beats])) if beats else None

        return {
            "n_beats": len(beats),
            "ef_simpson": mean("ef_simpson"),
            "ef_area_length": mean("ef_area_length"),
            "gls": mean("gls"),
        }


def measure_loop(
    labels: np.ndarray,
    n_keypoints: int = 20,
    spacing_mm: Sequence[float] | None = None,
    frame_time_ms: float | None = None,
    septum_side: str = "left",
    ed_es: tuple[int, int] | None = None,
) -> LoopMetrics:
    """Keypoints of every frame, ED/ES from the cavity area curve, and the LV measurements of a loop.

    A 2-frame segmentation is an ED/ES pair (as CAMUS and EchoNet-Dynamic label them): ED is the frame with the
    larger cavity, ES the other, unless ``ed_es`` names them.

    The phases are found on the cavity's pixel count (the most direct area, free of contour fitting);
    the measurements use the keypoints.

    Args:
        labels: (T, H, W) CAMUS label maps of a loop (T >= 3) or of an ED/ES pair (T = 2).
        n_keypoints: 20 or 40.
        spacing_mm: (dy, dx) in mm, or None for pixel units.
        frame_time_ms: frame time for the heart rate, or None.
        septum_side: see :func:`echokdm.keypoints.extract_keypoints`.
        ed_es: the (ED, ES) frame indices, instead of finding them.

    Returns:
        The loop's metrics.

    Raises:
        InputError: not a loop, frames without LV cavity (or without myocardium for 40 keypoints), or an
            area curve without ED/ES.
    """
    from echokdm.keypoints import extract_keypoints
    from echokdm.progress import progress

    lab = np.asarray(labels)
    if lab.ndim != 3 or lab.shape[0] < 2:
        raise InputError(f"a loop (T >= 3, H, W) or ED/ES pair (2, H, W) of label maps is needed, got {lab.shape}")
    if ed_es is not None and (ed_es[0] == ed_es[1] or not all(0 <= t < lab.shape[0] for t in ed_es)):
        raise InputError(f"ED/ES frames {ed_es} must be two different frames of the {lab.shape[0]}")
    missing = [t for t in range(lab.shape[0]) if not (lab[t] == 1).any()]
    if missing:
        raise InputError(f"no LV cavity (label 1) in frame(s) {_frame_list(missing)}")
    if n_keypoints == 40:
        missing = [t for t in range(lab.shape[0]) if not (lab[t] == 2).any()]
        if missing:
            raise InputError(
                f"40 keypoints need the LV myocardium (label 2), missing in frame(s) {_frame_list(missing)}"
            )
    kps = []
    for t in progress(range(lab.shape[0]), desc="keypoints"):
        try:
            kps.append(extract_keypoints(lab[t], n_keypoints, septum_side=septum_side))
        except InputError as e:
            raise InputError(f"frame {t}: {e}") from None
    frames = [measure_frame(k, spacing_mm) for k in kps]
    area = (lab == 1).sum(axis=(1, 2))
    if ed_es is None and lab.shape[0] == 2:
        ed_es = (int(np.argmax(area)), 1 - int(np.argmax(area)))
    if ed_es is not None:
        ed, es = (int(t) for t in ed_es)
        phases = Phases([ed], [es], [(ed, es)], None, None, area.astype(np.float64))
    else:
        phases = detect_phases(area, frame_time_ms)
    if not phases.ed or not phases.es:
        raise InputError("the LV area curve shows no clear ED and ES; is the segmentation a full loop?")
    sp = None if spacing_mm is None else (float(spacing_mm[0]), float(spacing_mm[1]))
    return LoopMetrics(np.stack(kps), frames, phases, Units(sp is not None), sp, frame_time_ms)


def biplane_ef(a4c: LoopMetrics, a2c: LoopMetrics) -> dict[str, float]:
    """Biplane Simpson EDV, ESV and EF from the first beat of an A4C and an A2C loop (or ED/ES pair).

    Raises:
        InputError: a view without a complete beat, or one view calibrated and the other not.
    """
    if not a4c.phases.beats or not a2c.phases.beats:
        raise InputError("biplane EF needs an ED and an ES frame in both views")
    (ed4, es4), (ed2, es2) = a4c.phases.beats[0], a2c.phases.beats[0]
    edv = biplane_simpson_volume(a4c.keypoints[ed4], a2c.keypoints[ed2], a4c.spacing_mm, a2c.spacing_mm)
    esv = biplane_simpson_volume(a4c.keypoints[es4], a2c.keypoints[es2], a4c.spacing_mm, a2c.spacing_mm)
    return {"edv_biplane": edv, "esv_biplane": esv, "ef_biplane": ejection_fraction(edv, esv)}


def _frame_list(frames: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f" and {len(frames) - limit} more" if len(frames) > limit else "")
