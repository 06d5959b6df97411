"""Simulate one phantom loop: frames, exact labels, exact displacement fields, phases and volumes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from echokdm.errors import InputError
from echokdm.phantom.anatomy import LABEL_OF, Anatomy
from echokdm.phantom.imaging import draw_ui
from echokdm.phantom.motion import CardiacCycle, Deformation
from echokdm.phantom.params import PHANTOM_VERSION, PhantomParams
from echokdm.phantom.render import FrameState, Renderer
from echokdm.phantom.render_cole import ColeRenderer
from echokdm.phantom.render_scatter import ScatterRenderer

#: image-formation models by ``PhantomParams.renderer``
RENDERERS: dict[str, type[Renderer]] = {"scatter": ScatterRenderer, "cole": ColeRenderer}


@dataclass
class PhantomLoop:
    """One simulated A4C loop with its exact ground truth.

    Attributes:
        frames: (T, H, W) float32 in [0, 1].
        labels: (T, H, W) uint8: 0 background, 1 LV cavity, 2 LV myocardium, 3 LA, 4 RV, 5 RA,
            6 other heart tissue (zero outside the sector).
        ddf_from_ed: (T, 2, H, W) float32, pixels, channels (dy, dx), backward/pull on frame t's grid:
            ``frame_t(y, x) ~ frame_ed(y + d[0], x + d[1])`` with ED = ``ed[0]``.
        ddf_to_next: (T, 2, H, W) float32, pull from frame t to frame t+1 on frame t+1's grid (last zero).
        sector_mask: (H, W) bool, the imaged fan.
        ed, es: frame indices of end-diastole / end-systole, one per beat.
        spacing_mm: (dy, dx).
        frame_time_ms: time between frames.
        ef: ejection fraction (percent) of the first beat from the label maps (area-length).
        edv, esv: LV volumes (mL) by the single-plane area-length method on the label maps.
        params: the loop's parameters and derived values, JSON-ready.
    """

    frames: np.ndarray
    labels: np.ndarray
    ddf_from_ed: np.ndarray
    ddf_to_next: np.ndarray
    sector_mask: np.ndarray
    ed: list[int]
    es: list[int]
    spacing_mm: tuple[float, float]
    frame_time_ms: float
    ef: float
    edv: float
    esv: float
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        T, H, W = self.frames.shape
        return (
            f"PhantomLoop(T={T}, size={H}x{W}, spacing={self.spacing_mm[0]:.3f} mm, "
            f"frame_time={self.frame_time_ms:.1f} ms, "
            f"ed={self.ed}, es={self.es}, EF={self.ef:.1f}%, EDV={self.edv:.1f} mL, ESV={self.esv:.1f} mL)"
        )


def area_length_volume(mask: np.ndarray, apex_ref: np.ndarray, spacing_mm: float) -> tuple[float, float, float]:
    """Single-plane area-length volume of a cavity mask.

    Args:
        mask: (H, W) bool cavity.
        apex_ref: (2,) (row, col) of the mitral annulus midpoint; the long axis runs from it to the
            farthest cavity pixel centre.
        spacing_mm: isotropic pixel spacing.

    Returns:
        (volume mL, area mm^2, length mm) with V = 8 A^2 / (3 pi L).
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0.0, 0.0, 0.0
    area = rows.size * spacing_mm**2
    length = float(np.max(np.hypot(rows - apex_ref[0], cols - apex_ref[1]))) * spacing_mm
    return 8.0 * area**2 / (3.0 * math.pi * length) / 1000.0, area, length


def frame_times(p: PhantomParams) -> np.ndarray:
    """(T,) time of each frame in ms since the first ED (negative before it)."""
    return (np.arange(p.n_frames) - p.pre_ed_frames) * p.frame_time_ms


def check_loop(p: PhantomParams) -> tuple[Anatomy, CardiacCycle]:
    """Check that the heart fits the sector and that the first beat's ED and ES are sampled.

    Returns:
        The anatomy and the cardiac cycle of ``p``.

    Raises:
        InputError: naming what does not fit and what would.
    """
    anat = Anatomy(p)
    anat.check_fits()
    cycle = CardiacCycle(p)
    t = frame_times(p)
    if not np.any((t > 0) & (t <= cycle.t_es + cycle.ivr)):
        raise InputError(
            f"{p.n_frames} frames of {p.frame_time_ms:.1f} ms sample no frame between ED and the end of "
            f"systole ({cycle.t_es + cycle.ivr:.0f} ms after ED); use more frames or a shorter frame time"
        )
    return anat, cycle


def simulate(params: PhantomParams) -> PhantomLoop:
    """Simulate the loop described by ``params`` (deterministic: same parameters, same loop).

    Args:
        params: from :func:`echokdm.phantom.sample_params`.

    Returns:
        The :class:`PhantomLoop`.

    Raises:
        InputError: the heart does not fit the sector, or the loop is too short to hold an ED and an ES.
    """
    p = params
    anat, cycle = check_loop(p)
    deform = Deformation(anat, cycle)
    renderer = RENDERERS[p.renderer](p, anat, deform, np.random.default_rng([p.seed, 0xEC0]))
    probe = renderer.fan
    frame_rngs = [np.random.default_rng([p.seed, 0xF0, t]) for t in range(p.n_frames)]

    T, H, W = p.n_frames, p.height, p.width
    times = frame_times(p)
    st = cycle.state(times)
    x_pix, y_pix = probe.pixel_mm()
    u_all, v_all = (a.ravel() for a in anat.to_heart(x_pix, y_pix))
    hinges = np.concatenate([anat.mitral_hinges(), anat.tricuspid_hinges()])
    # only pixels and scatterers inside the deformation's box ever move
    pm = np.flatnonzero(deform.in_box(u_all, v_all))
    u_pix, v_pix = u_all[pm], v_all[pm]
    cls_ref = anat.tissue_class(u_all, v_all)

    frames = np.zeros((T, H, W), np.float32)
    labels = np.zeros((T, H, W), np.uint8)
    ddf_from_ed = np.zeros((T, 2, H * W), np.float32)
    ddf_to_next = np.zeros((T, 2, H * W), np.float32)
    annulus_mid = np.zeros((T, 2))
    prev = None
    for t in range(T):
        c, e = float(st["c"][t]), float(st["e"][t])
        # exact ground truth: pull the material coordinates of every moving pixel
        U, V = deform.inverse(u_pix, v_pix, c, e, inside=True)
        cls = cls_ref.copy()
        cls[pm] = anat.tissue_class(U, V)
        labels[t] = np.where(probe.sector_mask, LABEL_OF[cls.reshape(H, W)], 0)
        ddf_from_ed[t][:, pm] = _heart_to_pixel_ddf(anat, U - u_pix, V - v_pix, probe.spacing)
        if prev is not None:
            u_prev, v_prev = deform.forward(U, V, *prev, inside=True)
            ddf_to_next[t - 1][:, pm] = _heart_to_pixel_ddf(anat, u_prev - u_pix, v_prev - v_pix, probe.spacing)
        prev = (c, e)
        hu, hv = deform.forward(hinges[:, 0], hinges[:, 1], c, e)
        annulus_mid[t] = probe.mm_to_px(*anat.to_image(hu[:2].mean(), hv[:2].mean()))
        state = FrameState(
            t, c, e, float(st["o_mv"][t]), float(st["o_tv"][t]), np.stack([hu, hv], 1), labels[t], frame_rngs[t]
        )
        frames[t] = renderer.frame(state)
    ddf_from_ed = ddf_from_ed.reshape(T, 2, H, W)
    ddf_to_next = ddf_to_next.reshape(T, 2, H, W)

    area = (labels == 1).sum(axis=(1, 2))
    ed, es = _phases(times, cycle, area, p)
    s = probe.spacing
    edv, a_ed, l_ed = area_length_volume(labels[ed[0]] == 1, annulus_mid[ed[0]], s)
    esv, a_es, l_es = area_length_volume(labels[es[0]] == 1, annulus_mid[es[0]], s)
    ef = 100.0 * (edv - esv) / edv
    if p.ui:
        frames = draw_ui(frames, probe, p, times, cycle)
    info = p.to_dict()
    info.update(
        phantom_version=PHANTOM_VERSION,
        spacing_mm=[s, s],
        ed=ed,
        es=es,
        ef=round(ef, 3),
        edv_ml=round(edv, 3),
        esv_ml=round(esv, 3),
        lv_area_ed_mm2=round(a_ed, 2),
        lv_area_es_mm2=round(a_es, 2),
        lv_length_ed_mm=round(l_ed, 2),
        lv_length_es_mm=round(l_es, 2),
        contractility=round(deform.scale, 5),
        cycle_ms=round(cycle.cycle_ms, 3),
        es_time_ms=round(cycle.t_es, 3),
        mitral_annulus_mid_px=[[float(a) for a in m] for m in annulus_mid[[ed[0], es[0]]]],
    )
    return PhantomLoop(
        frames=frames,
        labels=labels,
        ddf_from_ed=ddf_from_ed,
        ddf_to_next=ddf_to_next,
        sector_mask=probe.sector_mask.copy(),
        ed=ed,
        es=es,
        spacing_mm=(s, s),
        frame_time_ms=float(p.frame_time_ms),
        ef=float(ef),
        edv=float(edv),
        esv=float(esv),
        params=info,
    )


def _heart_to_pixel_ddf(anat: Anatomy, dU: np.ndarray, dV: np.ndarray, spacing: float) -> np.ndarray:
    """Displacements (N,) in the heart frame (mm) -> (2, N) (dy, dx) in pixels."""
    sa, ca = math.sin(anat.alpha), math.cos(anat.alpha)
    return np.stack([(dU * ca - dV * sa) / spacing, (dU * sa + dV * ca) / spacing]).astype(np.float32)


def _phases(times: np.ndarray, cycle: CardiacCycle, area: np.ndarray, p: PhantomParams) -> tuple[list[int], list[int]]:
    """ED (the frame at the start of each beat; the first one is the reference frame) and ES (smallest
    LV cavity in the beat's systole) of each beat that has both inside the loop."""
    ed, es = [], []
    T = len(times)
    for k in range(p.n_beats + 1):
        i_ed = p.pre_ed_frames + int(round(k * cycle.cycle_ms / p.frame_time_ms))
        stop = k * cycle.cycle_ms + cycle.t_es + cycle.ivr
        window = np.flatnonzero((times > k * cycle.cycle_ms) & (times <= stop))
        if i_ed >= T or window.size == 0 or (k > 0 and times[-1] < k * cycle.cycle_ms + cycle.t_es):
            break
        ed.append(i_ed)
        es.append(int(window[np.argmin(area[window])]))
    return ed, es

