"""Parameters of one phantom loop: subject anatomy, cardiac cycle, acquisition and image quality.

Every loop is fully described by a :class:`PhantomParams` (plain numbers and strings, written to the
sidecar JSON, checked on creation). This module is plain data at the bottom of the phantom package: the
geometry, motion and renderers read it, and :mod:`echokdm.phantom.sampling` draws it from a seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from echokdm.defaults import EF_LIMITS
from echokdm.errors import InputError

#: bumped whenever the same parameters would give a different loop (recorded in every sidecar)
PHANTOM_VERSION = "1.0"
#: smallest accepted image side in pixels (the anatomy check below may ask for more).
MIN_SIZE = 64
#: a wall must be at least this many pixels thick, else the size is too small for the anatomy.
MIN_WALL_PX = 1.5
HYPOKINESIS_SEGMENTS = ("none", "septal", "lateral", "apical")
#: image-formation models (see :mod:`echokdm.phantom.render`); sample_params draws "scatter" unless told
RENDERER_NAMES = ("scatter", "cole")


@dataclass(frozen=True)
class PhantomParams:
    """Everything that determines one phantom loop (lengths in mm, angles in degrees, times in ms).

    Anatomy is given in the heart frame at end-diastole: ``lv_length_mm`` from the endocardial apex to
    the mitral annulus plane, cavity width ``sphericity * lv_length_mm`` of which ``septal_share`` lies
    on the septal side of the long axis. The loop starts ``pre_ed_frames`` frames before the first ED.
    """

    seed: int
    # image grid and acquisition
    height: int = 256
    width: int = 256
    depth_mm: float = 160.0
    sector_deg: float = 75.0
    frame_time_ms: float = 25.0
    n_frames: int = 40
    pre_ed_frames: int = 2
    # cardiac cycle
    n_beats: int = 1
    heart_rate_bpm: float = 70.0
    target_ef: float = 60.0
    long_ratio: float = 1.0
    thickening: float = 0.45
    atrial_fraction: float = 0.25
    rv_function: float = 1.0
    hypokinesis: str = "none"
    hypokinesis_center: float = 0.5
    hypokinesis_severity: float = 0.0
    # placement of the heart in the sector
    apex_depth_mm: float = 28.0
    apex_x_mm: float = 0.0
    tilt_deg: float = 6.0
    # LV
    lv_length_mm: float = 85.0
    sphericity: float = 0.55
    septal_share: float = 0.45
    annulus_ratio: float = 0.6
    septum_mm: float = 10.0
    lateral_wall_mm: float = 9.0
    apex_wall_mm: float = 7.0
    # RV, atria
    rv_width_mm: float = 32.0
    rv_apex_frac: float = 0.4
    tv_offset_mm: float = 6.0
    rv_wall_mm: float = 4.0
    la_length_mm: float = 45.0
    la_width_mm: float = 40.0
    ra_length_mm: float = 42.0
    ra_width_mm: float = 38.0
    # image formation (axial/lateral FWHM and phase coupling: scatter renderer; bandwidth, F-number, focus,
    # beams and reverberation: cole renderer; the rest: both)
    renderer: str = "scatter"
    frequency_mhz: float = 2.5
    axial_fwhm_mm: float = 2.4
    phase_coupling: float = 0.1
    lateral_fwhm_deg: float = 2.6
    attenuation_db_cm_mhz: float = 0.5
    tgc_error_db: float = 0.0
    dynamic_range_db: float = 55.0
    gray_gamma: float = 2.4
    smoothing_mm: float = 0.6
    display_gain: float = 0.5
    gain_db: float = 0.0
    noise_db: float = -70.0
    blood_db: float = -22.0
    haze: float = 0.5
    dropout: float = 0.3
    bandwidth: float = 0.6
    f_number: float = 3.5
    focus_mm: float = 80.0
    n_beams: int = 128
    reverb: float = 0.3
    ui: bool = False
    # sidecar-only subject description (CAMUS Info file)
    sex: str = "F"
    age: int = 60

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return (self.height, self.width)

    @property
    def cycle_ms(self) -> float:
        """Duration of one heart beat."""
        return 60000.0 / self.heart_rate_bpm

    @property
    def spacing_mm(self) -> float:
        """Isotropic pixel spacing that fits the whole fan into the frame (mm/pixel)."""
        half = math.radians(self.sector_deg) / 2
        return max(self.depth_mm / (self.height - 2), 2 * self.depth_mm * math.sin(half) / (self.width - 2))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> PhantomParams:
        """A copy with some fields changed (validated again)."""
        check_names(changes)
        return dataclasses.replace(self, **changes)


FIELDS = {f.name: f for f in dataclasses.fields(PhantomParams)}


def check_names(names: dict[str, Any]) -> None:
    """Raise InputError naming any key of ``names`` that is not a :class:`PhantomParams` field."""
    unknown = sorted(set(names) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown phantom parameter(s) {', '.join(unknown)}; expected some of {', '.join(FIELDS)}")


def _validate(p: PhantomParams) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise InputError(msg)

    lo, hi = EF_LIMITS
    need(lo <= p.target_ef <= hi, f"target EF {p.target_ef:g}% is outside {lo:g}-{hi:g}%")
    need(
        min(p.height, p.width) >= MIN_SIZE,
        f"image size {p.height}x{p.width} is too small; expected at least {MIN_SIZE}",
    )
    need(p.n_frames >= 2, f"n_frames={p.n_frames}; expected at least 2")
    need(1 <= p.n_beats <= 5, f"n_beats={p.n_beats}; expected 1-5")
    need(30 <= p.heart_rate_bpm <= 180, f"heart rate {p.heart_rate_bpm:g} bpm is outside 30-180")
    need(2 <= p.frame_time_ms <= 200, f"frame time {p.frame_time_ms:g} ms is outside 2-200")
    need(0 <= p.pre_ed_frames < p.n_frames, f"pre_ed_frames={p.pre_ed_frames} must be in [0, n_frames)")
    need(60 <= p.depth_mm <= 300, f"depth {p.depth_mm:g} mm is outside 60-300")
    need(30 <= p.sector_deg <= 120, f"sector angle {p.sector_deg:g} deg is outside 30-120")
    need(
        p.hypokinesis in HYPOKINESIS_SEGMENTS, f"hypokinesis {p.hypokinesis!r}; expected one of {HYPOKINESIS_SEGMENTS}"
    )
    need(0 <= p.hypokinesis_severity <= 1, "hypokinesis_severity must be in [0, 1]")
    need(0 <= p.haze <= 1 and 0 <= p.dropout <= 1 and 0 <= p.reverb <= 1, "haze, dropout and reverb must be in [0, 1]")
    need(p.renderer in RENDERER_NAMES, f"renderer {p.renderer!r}; expected one of {', '.join(RENDERER_NAMES)}")
    need(0.5 <= p.frequency_mhz <= 15, f"frequency {p.frequency_mhz:g} MHz is outside 0.5-15")
    need(0.2 <= p.bandwidth <= 1.5, f"fractional bandwidth {p.bandwidth:g} is outside 0.2-1.5")
    need(1 <= p.f_number <= 10 and 20 <= p.focus_mm <= 300, "f_number must be in [1, 10] and focus_mm in [20, 300]")
    need(32 <= p.n_beams <= 512, f"n_beams={p.n_beams}; expected 32-512")
    need(0 <= p.phase_coupling <= 1, "phase_coupling must be in [0, 1]")
    need(0.05 <= p.atrial_fraction <= 0.6, "atrial_fraction must be in [0.05, 0.6]")
    need(20 <= p.dynamic_range_db <= 90, f"dynamic range {p.dynamic_range_db:g} dB is outside 20-90")
    need(0.5 <= p.gray_gamma <= 4, f"gray_gamma {p.gray_gamma:g} is outside 0.5-4")
    need(0.1 <= p.display_gain <= 1, f"display_gain {p.display_gain:g} is outside 0.1-1")
    need(0 <= p.smoothing_mm <= 5, f"smoothing_mm {p.smoothing_mm:g} is outside 0-5")
    walls = min(p.apex_wall_mm, p.lateral_wall_mm, p.septum_mm, p.rv_wall_mm + 1.0)
    need(
        walls / p.spacing_mm >= MIN_WALL_PX,
        f"image size {p.height}x{p.width} is too small for the anatomy: a {walls:.1f} mm wall would be "
        f"{walls / p.spacing_mm:.1f} px thick at {p.spacing_mm:.2f} mm/px (depth {p.depth_mm:.0f} mm, "
        f"sector {p.sector_deg:.0f} deg); use a larger size",
    )
