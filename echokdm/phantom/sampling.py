"""Drawing phantom loops: :func:`sample_params` turns a seed into realistic :class:`PhantomParams`, and
:func:`split_seeds` hands out disjoint seeds for the train/val/test splits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from echokdm.defaults import EF_LIMITS
from echokdm.errors import InputError
from echokdm.phantom.anatomy import Anatomy
from echokdm.phantom.params import FIELDS, HYPOKINESIS_SEGMENTS, RENDERER_NAMES, PhantomParams, check_names
from echokdm.phantom.simulate import check_loop

#: default range of the target EF draw (percent), inside the accepted EF_LIMITS
DEFAULT_EF_RANGE = (15.0, 80.0)
SPLITS = ("train", "val", "test")
#: seeds of different splits never overlap: split k uses [k * SPLIT_STRIDE, (k + 1) * SPLIT_STRIDE).
SPLIT_STRIDE = 1_000_000


def sample_params(
    seed: int,
    *,
    size: int | tuple[int, int] | None = None,
    ef_range: tuple[float, float] | None = None,
    frames: int | None = None,
    renderers: Sequence[str] = ("scatter",),
    **overrides: Any,
) -> PhantomParams:
    """Draw the parameters of one loop from ``seed`` (same seed, same overrides -> same parameters).

    Every random draw happens whatever the overrides, so overriding one field leaves the others as they
    were; fields drawn after it that depend on it (e.g. sphericity on the EF) follow the override.

    Args:
        seed: non-negative integer.
        size: image side, or (H, W); default 256.
        ef_range: (min, max) percent for the target EF draw; default 15-80.
        frames: total number of frames; the frame time then follows from heart rate and beats.
        renderers: the renderer is drawn uniformly from these (default: always ``scatter``, the loops of
            earlier versions); the probe of the ``cole`` renderer (frequency 1.5-5 MHz, bandwidth,
            F-number, focus, 64-256 beams) is drawn with it.
        overrides: any :class:`PhantomParams` field, used instead of the drawn value.

    Returns:
        The validated parameters.

    Raises:
        InputError: unknown field, or a value outside its accepted range (e.g. EF outside 5-90%, a size
            too small for the anatomy, a depth too shallow or a sector too narrow for the heart).
    """
    check_names(overrides)
    bad = sorted(set(renderers) - set(RENDERER_NAMES)) or ([] if len(renderers) else ["none"])
    if bad:
        raise InputError(f"renderer(s) {', '.join(bad)}; expected some of {', '.join(RENDERER_NAMES)}")
    if int(seed) < 0:
        raise InputError(f"seed {seed} is negative; expected a non-negative integer")
    lo, hi = ef_range if ef_range is not None else DEFAULT_EF_RANGE
    if not (EF_LIMITS[0] <= lo <= hi <= EF_LIMITS[1]):
        raise InputError(f"EF range {lo:g}-{hi:g}% is not an interval within {EF_LIMITS[0]:g}-{EF_LIMITS[1]:g}%")
    rng = np.random.default_rng([int(seed), 0x5EED])
    v: dict[str, Any] = {"seed": int(seed)}

    def put(name: str, value: Any) -> Any:
        v[name] = overrides.get(name, value)
        return v[name]

    if size is not None:
        h, w = (size, size) if np.isscalar(size) else size
        overrides.setdefault("height", int(h))
        overrides.setdefault("width", int(w))
    put("height", 256)
    put("width", 256)
    u = rng.uniform(size=64)  # a fixed block of draws: adding a field never shifts the others
    g = rng.standard_normal(size=16)

    ef = put("target_ef", round(float(lo + (hi - lo) * u[0]), 2))
    sick = float(np.clip((55.0 - ef) / 40.0, 0.0, 1.0))  # 0 healthy .. 1 severely reduced
    put("heart_rate_bpm", round(float(np.clip(70 + 12 * g[0] + 10 * sick, 48, 115)), 1))
    beats = put("n_beats", int(1 + (u[1] > 0.6) + (u[1] > 0.9)))
    put("long_ratio", round(float(np.clip(1.0 + 0.15 * g[1] - 0.15 * sick, 0.6, 1.4)), 3))
    put("thickening", round(float(0.45 + 0.08 * g[2]), 3))
    put("atrial_fraction", round(float(np.clip(0.22 + 0.06 * g[3] + 0.1 * sick, 0.1, 0.5)), 3))
    put("rv_function", round(float(np.clip(1.0 + 0.15 * g[4] - 0.2 * sick, 0.5, 1.3)), 3))
    hypo_p = 0.15 + 0.5 * sick
    seg = HYPOKINESIS_SEGMENTS[1 + int(u[3] * 3)] if u[2] < hypo_p and ef < 70 else "none"
    put("hypokinesis", seg)
    put("hypokinesis_center", round(float(0.3 + 0.5 * u[4]), 3))
    put("hypokinesis_severity", round(float(0.4 + 0.5 * u[5]) if seg != "none" else 0.0, 3))

    scale = float(np.clip(1.0 + 0.07 * g[5] + 0.08 * sick, 0.85, 1.2))
    put("lv_length_mm", round(float(np.clip(84 * scale + 4 * g[6], 68, 102)), 2))
    put("sphericity", round(float(np.clip(0.6 + 0.05 * g[7] + 0.1 * sick, 0.48, 0.8)), 3))
    put("septal_share", round(float(0.44 + 0.04 * (u[6] - 0.5)), 3))
    put("annulus_ratio", round(float(0.56 + 0.1 * u[7]), 3))
    put("septum_mm", round(float(np.clip(10 + 1.2 * g[8], 7.5, 14)), 2))
    put("lateral_wall_mm", round(float(np.clip(9 + 1.0 * g[9], 7, 12.5)), 2))
    put("apex_wall_mm", round(float(6.0 + 2.5 * u[8]), 2))
    put("rv_width_mm", round(float(32 + 10 * u[9]) * scale, 2))
    put("rv_apex_frac", round(float(0.22 + 0.18 * u[10]), 3))
    put("tv_offset_mm", round(float(4 + 5 * u[11]), 2))
    put("rv_wall_mm", round(float(3.5 + 1.5 * u[12]), 2))
    put("la_length_mm", round(float(38 + 10 * u[13] + 6 * sick) * scale, 2))
    put("la_width_mm", round(float(36 + 8 * u[14] + 4 * sick) * scale, 2))
    put("ra_length_mm", round(float(38 + 10 * u[15]) * scale, 2))
    put("ra_width_mm", round(float(34 + 8 * u[16]) * scale, 2))
    put("apex_depth_mm", round(float(18 + 14 * u[17]), 2))
    put("apex_x_mm", round(float(-4 + 12 * u[18]), 2))
    put("tilt_deg", round(float(-3 + 13 * u[19]), 2))

    # acquisition: depth and sector just large enough for the heart (its geometry needs the anatomy fields
    # chosen above), then some slack
    # big (dilated) hearts: move the apex away from the probe / shorten the atrium until the LV and LA
    # fit a 90 deg, 200 mm sector (overridden values are never changed)
    for _ in range(12):
        ext = Anatomy(PhantomParams(**{**_defaults(), **v})).extent()
        if 2.0 * ext["angle_cavity"] + 6.0 > 90.0 and "apex_depth_mm" not in overrides:
            v["apex_depth_mm"] = round(v["apex_depth_mm"] + 4.0, 2)
        elif ext["depth_lv_la"] + 5.0 > 200.0 and "la_length_mm" not in overrides and v["la_length_mm"] > 32:
            v["la_length_mm"] = round(v["la_length_mm"] - 4.0, 2)
        else:
            break
    depth_min = max(120.0, ext["depth_lv_la"] + 5.0)
    put("depth_mm", round(float(np.clip(ext["depth_heart"] + 3.0 + 30.0 * u[20], depth_min, 200.0)), 1))
    sector_min = max(60.0, 2.0 * ext["angle_cavity"] + 6.0)
    put("sector_deg", round(float(np.clip(2.0 * ext["angle_epi"] - 6.0 + 20.0 * u[21], sector_min, 90.0)), 1))
    renderer = put("renderer", tuple(renderers)[int(u[40] * len(renderers))])
    if renderer == "cole":  # a probe of its own: 1.5-5 MHz (mostly adult 1.5-3.5), aperture 16-26 mm, 64-256 beams
        put("frequency_mhz", round(float(1.5 + 3.5 * u[41] ** 1.6), 2))
    else:
        put("frequency_mhz", round(float(1.8 + 1.4 * u[22]), 2))
    put("bandwidth", round(float(0.4 + 0.5 * u[42]), 3))
    focus = put("focus_mm", round(float(45.0 + 65.0 * u[43]), 1))
    put("f_number", round(float(np.clip(2.5 + 2.5 * u[44], focus / 26.0, focus / 16.0)), 3))
    put("n_beams", int(8 * round(8 * 4.0 ** u[45])))
    put("reverb", round(float(u[46]), 3))
    put("axial_fwhm_mm", round(float(2.0 + 0.9 * u[23]), 3))
    put("lateral_fwhm_deg", round(float(2.2 + 0.8 * u[24]), 3))
    put("phase_coupling", round(float(0.15 * u[38]), 3))
    put("attenuation_db_cm_mhz", round(float(0.4 + 0.3 * u[25]), 3))
    put("tgc_error_db", round(float(4 * g[10]), 2))
    put("dynamic_range_db", round(float(50 + 12 * u[26]), 1))
    put("gray_gamma", round(float(2.1 + 0.6 * u[36]), 3))
    put("display_gain", round(float(0.38 + 0.24 * u[37]), 3))
    put("smoothing_mm", round(float(0.3 + 0.6 * u[39]), 3))
    put("gain_db", round(float(2 * g[11]), 2))
    put("noise_db", round(float(-76 + 12 * u[27]), 1))
    put("blood_db", round(float(-27 + 10 * u[28]), 1))
    put("haze", round(float(0.15 + 0.85 * u[29]), 3))
    put("dropout", round(float(u[30] ** 1.5), 3))
    put("ui", bool(u[31] < 0.5))
    put("sex", "F" if u[32] < 0.5 else "M")
    put("age", int(25 + 60 * u[33] ** (1 - 0.5 * sick)))

    # timing: 30-60 frames per beat unless the total frame count (or the frame time) is given
    cycle = 60000.0 / v["heart_rate_bpm"]
    pre = 0.02 + 0.1 * u[34]  # start in late diastole, this many cycles before ED
    if frames is not None:
        if int(frames) < 2:
            raise InputError(f"frames={frames}; expected at least 2")
        overrides.setdefault("n_frames", int(frames))
    if "n_frames" in overrides:
        n = int(overrides["n_frames"])
        ft = overrides.get("frame_time_ms", (beats + pre) * cycle / n)
    else:
        ft = overrides.get("frame_time_ms", cycle / (30.0 + 30.0 * u[35]))
        n = int(math.ceil((beats + pre) * cycle / ft))
    put("frame_time_ms", round(float(ft), 4))
    put("n_frames", n)
    put("pre_ed_frames", int(min(round(pre * cycle / v["frame_time_ms"]), v["n_frames"] - 1)))
    params = PhantomParams(**v)
    check_loop(params)
    return params


def _defaults() -> dict[str, Any]:
    return {k: f.default for k, f in FIELDS.items() if f.default is not dataclasses.MISSING}


def split_seeds(split: str, n: int, start: int = 0) -> list[int]:
    """``n`` seeds of a split; different splits never share a seed.

    Args:
        split: ``train``, ``val`` or ``test``.
        n: number of seeds (>= 1).
        start: offset inside the split (``start + n`` at most 1,000,000).

    Raises:
        InputError: unknown split, ``n < 1`` or a range leaving the split's block.
    """
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if int(n) < 1:
        raise InputError(f"number of loops n={n}; expected at least 1")
    if int(start) < 0 or int(start) + int(n) > SPLIT_STRIDE:
        raise InputError(f"seed range {start}..{int(start) + int(n) - 1} leaves the {split} block [0, {SPLIT_STRIDE})")
    base = SPLITS.index(split) * SPLIT_STRIDE + int(start)
    return list(range(base, base + int(n)))
