"""The ``cole`` renderer: an RF-line convolution simulator (after Gao et al., 2009) on the phantom heart.

Point scatterers are fixed in the tissue (they move with the exact deformation, so speckle follows the
walls and decorrelates as they strain); their amplitudes are Gaussian with a per-structure echogenicity,
a texture, a brighter fibrous annulus and a specular boost where an interface faces the beam. Blood
scatterers get new amplitudes every frame (flow). Every frame, :class:`~echokdm.phantom.cole_probe.
ColeProbe` projects them onto the lines, and the lines pass what the body and the scanner do to them:

* attenuation (two-way, ``attenuation_db_cm_mhz`` at ``frequency_mhz``) and element directivity;
* a rib / lung shadow over a band of lines crossing the LV lateral wall (``dropout``);
* stationary clutter: static scatterers whose level falls off with depth (near-field haze, ``haze``);
* reverberation: the chest wall's echoes repeated at 2x, 3x, 4x their depth with alternating sign and
  growing lateral blur (``reverb``);
* band-limited receiver noise (``noise_db``), envelope detection, TGC with a slider error
  (``tgc_error_db``), log compression (``dynamic_range_db``, ``gain_db``), a grey map (``gray_gamma``,
  ``display_gain``) and scan conversion.

The display reference (median myocardial envelope) and the noise level are fixed on the first frame.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from echokdm.phantom.anatomy import (
    BLOOD_CLASSES,
    EXTRA,
    HEART_WALL,
    LV_MYO,
    PERI_SPACE,
    PERICARDIUM,
    Anatomy,
    smoothstep,
)
from echokdm.phantom.cole_probe import ColeProbe
from echokdm.phantom.fan import Fan
from echokdm.phantom.motion import Deformation, Valves
from echokdm.phantom.params import PhantomParams
from echokdm.phantom.render import FrameState

CELL_SCATTERERS = 4.0  # scatterers per resolution cell, on a jittered grid: fully developed speckle
MYO_LEVEL = 0.55  # display level of the median myocardial echo, as a fraction of the dynamic range
WALL_DB = {LV_MYO: 0.0, HEART_WALL: -2.0, PERICARDIUM: 0.0, PERI_SPACE: -12.0}  # relative to myocardium
SEPTUM_DB = 5.0  # the septum is brighter than the lateral wall by up to this much
LUNG_DB = -26.0  # tissue beside the heart
CHEST_DB = -16.0  # chest wall between the probe and the apex (plus bright fascia layers)
POSTERIOR_DB = -8.0  # tissue behind the atria (AV groove, descending aorta, posterior mediastinum)
ANNULUS_DB = 6.0  # fibrous annuli at the hinge points
SPECULAR_DB = 10.0  # extra echo of an interface facing the beam
LEAFLET_DB = 0.0
CLUTTER_DB = 0.0  # near-field clutter at haze 1, relative to myocardium
FOG_DB = -36.0  # weak clutter everywhere
REVERB_GAIN = 0.5  # amplitude kept per reverberation round trip at reverb = 1
#: attenuation (dB/cm/MHz at attenuation_db_cm_mhz = 0.55) of each tissue class along the lines
ATTENUATION = np.array([0.6, 0.18, 0.55, 0.18, 0.18, 0.18, 0.55, 0.6, 0.3])


class ColeRenderer:
    """COLE-type RF simulation behind the :class:`~echokdm.phantom.render.Renderer` interface.

    Args:
        p: parameters.
        anatomy: reference geometry.
        deform: the loop's deformation (moves the tissue scatterers).
        rng: random generator (scatterers, textures, clutter, shadow, leaflets, TGC sliders).
    """

    def __init__(self, p: PhantomParams, anatomy: Anatomy, deform: Deformation, rng: np.random.Generator) -> None:
        self.p, self.anat, self.deform = p, anatomy, deform
        fan = self.fan = Fan(p)
        pr = self.probe = ColeProbe(p, fan)
        # tissue scatterers: one per cell of a jittered (range, angle) grid, CELL_SCATTERERS per resolution cell
        axial, lateral = pr.resolution_cell()
        t_lo, t_hi = -fan.half - (pr.K + 1) * pr.dtheta, fan.half + (pr.K + 1) * pr.dtheta
        r_hi = fan.depth + 4.0 * pr.sigma_r + 1.0
        r, t = _jittered_grid(
            rng, (0.5, r_hi), (t_lo, t_hi), axial / math.sqrt(CELL_SCATTERERS), lateral / math.sqrt(CELL_SCATTERERS)
        )
        n = r.size
        x, y = r * np.sin(t), r * np.cos(t)
        U, V = anatomy.to_heart(x, y)
        cls = anatomy.tissue_class(U, V)
        level = 10.0 ** (self._echogenicity_db(cls, U, V, x, y, rng) / 20.0)
        amp = level * rng.standard_normal(n)
        # blood keeps half of its scatterers at twice the power (faint speckle, redrawn every frame)
        blood = np.isin(cls, BLOOD_CLASSES)
        kept = ~blood | (rng.uniform(size=n) < 0.5)
        level = np.where(blood, math.sqrt(2.0) * level, level)
        in_box = deform.in_box(U, V)
        moving, static = in_box & kept, ~in_box & kept
        self.mU, self.mV, self.m_amp = U[moving], V[moving], amp[moving]
        self.blood, self.blood_level = np.flatnonzero(blood[moving]), level[moving][blood[moving]]
        # static: tissue outside the heart's box, and clutter (stationary haze, weak fog everywhere)
        n_c = n // 2
        rc, tc = rng.uniform(0.5, r_hi, n_c), rng.uniform(t_lo, t_hi, n_c)
        reach = 30.0 + 50.0 * rng.uniform()  # how deep the haze reaches into the cavities (mm)
        c_level = 10.0 ** (CLUTTER_DB / 20.0) * p.haze * np.exp(-rc / reach) + 10.0 ** (FOG_DB / 20.0) * (0.5 + p.haze)
        s_r, s_t = np.concatenate([r[static], rc]), np.concatenate([t[static], tc])
        s_amp = np.concatenate([amp[static], c_level * rng.standard_normal(n_c)])
        density60 = n / ((r_hi - 0.5) * (t_hi - t_lo) * 60.0)  # scatterers per mm^2 at 60 mm
        self.valves = Valves(anatomy, rng, density=2.0 * density60)
        self.leaflet_amp = 10.0 ** (LEAFLET_DB / 20.0)
        # what every line goes through: attenuation, directivity, the lateral-wall shadow; TGC
        rr, tt = pr.sample_ranges(), pr.beam_angles()
        att_db = self._attenuation_db(rr, tt)
        self.attenuation = (10.0 ** (-att_db / 20.0)).astype(np.float32)
        self.line_gain = self.attenuation * (np.cos(tt)[:, None] ** 2 * self._shadow(rr, tt, rng)).astype(np.float32)
        self.static_lines = pr.project(s_r, s_t, s_amp) * self.line_gain  # projected once: they never move
        # the user's TGC evens out the attenuation of the central lines, with a slider error
        knots = np.linspace(0.0, fan.depth + 5.0, 7)
        slider_db = p.tgc_error_db * (knots / fan.depth - 0.5) + 1.5 * rng.standard_normal(knots.size)
        nominal_db = np.median(att_db[np.abs(tt) <= 0.5 * fan.half], axis=0)
        self.tgc = (10.0 ** ((nominal_db + np.interp(rr, knots, slider_db)) / 20.0)).astype(np.float32)
        self.n_chest = int(min(max(p.apex_depth_mm - 3.0, 0.0), fan.depth) / pr.dr)
        self.ref = self.noise_amp = 0.0
        self._pix, self._pix_ok = pr.sample_pixels()

    # ---- tissue -------------------------------------------------------------------------------------
    def _echogenicity_db(
        self, cls: np.ndarray, U: np.ndarray, V: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Echogenicity (dB relative to myocardium) of scatterers from class, textures and geometry."""
        p, a = self.p, self.anat
        db = np.full(cls.shape, p.blood_db)
        for k, v in WALL_DB.items():
            db[cls == k] = v
        fine, coarse = _texture(rng, x, y, 1.2), _texture(rng, x, y, 5.0)
        tissue = ~np.isin(cls, BLOOD_CLASSES)
        db += np.where(tissue, 2.5 * fine + 3.0 * coarse, 0.0) + np.where(
            (cls == LV_MYO) & (V < 0), SEPTUM_DB * rng.uniform(), 0.0
        )
        # around the heart: dark lung/fat beside it, bright layers in the chest wall, bright behind the atria
        chest = p.apex_depth_mm - 3.0
        layers = CHEST_DB + 4.0 * fine
        for d, w in zip(rng.uniform(2.0, max(chest - 2.0, 3.0), 3), rng.uniform(1.5, 4.0, 3), strict=True):
            layers = layers + 12.0 * np.exp(-0.5 * ((y - d) / w) ** 2)
        deep = a.extent()["depth_heart"]
        behind = smoothstep((y - deep + 30.0) / 25.0) * smoothstep(
            1.0 - (np.abs(x - a.to_image(a.L, 0.0)[0]) - 35.0) / 25.0
        )
        extra = LUNG_DB + 8.0 * coarse + (POSTERIOR_DB - LUNG_DB) * behind
        w_chest = 1.0 - smoothstep((y - chest + 6.0) / 6.0)
        db = np.where(cls == EXTRA, w_chest * layers + (1.0 - w_chest) * extra, db)
        for hu, hv in np.concatenate([a.mitral_hinges(), a.tricuspid_hinges()]):
            db += np.where(tissue, ANNULUS_DB * np.exp(-((U - hu) ** 2 + (V - hv) ** 2) / (2 * 4.0**2)), 0.0)
        return db + np.where(tissue, SPECULAR_DB * self._facing(U, V, x, y), 0.0)

    def _facing(self, U: np.ndarray, V: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """In [0, 1]: how much a tissue-blood (or tissue-fluid) interface lies here, facing the beam."""
        a, (u0, u1, v0, v1) = self.anat, self.deform.box
        step = 0.5
        gu, gv = np.arange(u0, u1, step), np.arange(v0, v1, step)
        G_U, G_V = np.meshgrid(gu, gv, indexing="ij")
        solid = np.isin(a.tissue_class(G_U, G_V), (LV_MYO, HEART_WALL, PERICARDIUM)).astype(np.float32)
        solid = ndimage.gaussian_filter(solid, 1.0 / step)
        dU, dV = np.gradient(solid, step)
        coords = np.stack([(U - u0) / step, (V - v0) / step])
        nU = ndimage.map_coordinates(dU, coords, order=1, mode="constant")
        nV = ndimage.map_coordinates(dV, coords, order=1, mode="constant")
        mag = np.hypot(nU, nV)
        strength = np.clip(mag / (0.5 * float(np.hypot(dU, dV).max()) + 1e-9), 0.0, 1.0)
        sa, ca = math.sin(a.alpha), math.cos(a.alpha)
        r = np.maximum(np.hypot(x, y), 1e-6)
        bU, bV = (x * sa + y * ca) / r, (x * ca - y * sa) / r  # beam direction in the heart frame
        cos = np.abs(nU * bU + nV * bV) / np.maximum(mag, 1e-9)
        return strength * cos**2

    def _attenuation_db(self, rr: np.ndarray, tt: np.ndarray) -> np.ndarray:
        """(n_b, n_r) two-way attenuation (dB) along each line through the reference anatomy: blood
        attenuates less than tissue, so regions behind the cavities come out brighter."""
        a, p, step = self.anat, self.p, 0.5
        rc = np.arange(0.0, rr[-1] + step, step)[None, :]
        cls = a.tissue_class(*a.to_heart(rc * np.sin(tt)[:, None], rc * np.cos(tt)[:, None]))
        one_way = np.cumsum(ATTENUATION[cls], axis=1) * (step / 10.0) * (p.attenuation_db_cm_mhz / 0.55)
        return 2.0 * p.frequency_mhz * one_way[:, np.minimum(np.rint(rr / step).astype(np.intp), rc.size - 1)]

    def _shadow(self, rr: np.ndarray, tt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n_b, n_r) transmission of a rib / lung shadow over the lines that cross the LV lateral wall."""
        a, p = self.anat, self.p
        U = np.array([a.L * rng.uniform(0.3, 0.7)])
        x, y = a.to_image(U, a.lv_epi(U)[1] - a.t_lat / 2)
        t0, r0 = float(np.arctan2(x, y)[0]), float(np.hypot(x, y)[0])
        half = math.radians(rng.uniform(3.0, 9.0))
        band = 1.0 - smoothstep((np.abs(tt - t0) - half) / math.radians(2.0))
        start = r0 * rng.uniform(0.4, 0.8)
        onset = smoothstep((rr - start) / 10.0)
        return 1.0 - 0.9 * p.dropout * band[:, None] * onset[None, :]

    # ---- one frame ------------------------------------------------------------------------------------
    def frame(self, state: FrameState) -> np.ndarray:
        """(H, W) float32 grey image of one frame (the first frame calibrates the display)."""
        a, pr = self.anat, self.probe
        xm, ym = a.to_image(*self.deform.forward(self.mU, self.mV, state.c, state.e, inside=True))
        lu, lv, la = self.valves.points(state.hinges, state.o_mv, state.o_tv)
        xl, yl = a.to_image(lu, lv)
        m_amp = self.m_amp.copy()
        m_amp[self.blood] = self.blood_level * state.rng.standard_normal(self.blood.size)  # flowing blood
        lines = pr.project(
            np.concatenate([np.hypot(xm, ym), np.hypot(xl, yl)]),
            np.concatenate([np.arctan2(xm, ym), np.arctan2(xl, yl)]),
            np.concatenate([m_amp, la * self.leaflet_amp]),
        )
        lines = self._reverberate(lines * self.line_gain + self.static_lines)
        if state.index == 0:
            self._calibrate(pr.envelope(pr.rf(lines)), state.labels)
        noise = state.rng.standard_normal(2 * lines.size, dtype=np.float32).view(np.complex64).reshape(lines.shape)
        lines += noise * np.float32(self.noise_amp / math.sqrt(2.0) / pr.noise_gain())
        return self._display(pr.envelope(pr.rf(lines)))

    def _reverberate(self, lines: np.ndarray) -> np.ndarray:
        """Add (in place) the chest wall's echoes bounced between it and the probe: order m appears at
        (m + 1) times its depth, with alternating sign and a lateral blur of m lines."""
        n = self.n_chest
        if self.p.reverb <= 0 or n < 2:
            return lines
        near, att = lines[:, :n].copy(), self.attenuation[:, :n]
        for m in (1, 2, 3):
            cols = np.arange(n) * (m + 1)
            keep = cols < lines.shape[1]
            echo = near[:, keep] * att[:, keep] ** m * np.float32((-REVERB_GAIN * self.p.reverb) ** m)
            echo = ndimage.gaussian_filter1d(echo.real, m, axis=0) + 1j * ndimage.gaussian_filter1d(
                echo.imag, m, axis=0
            )
            lines[:, cols[keep]] += echo.astype(np.complex64)
        return lines

    def _calibrate(self, env: np.ndarray, labels: np.ndarray) -> None:
        """Display reference: median TGC'd envelope on myocardium (whole sector if none); noise level."""
        env = env * self.tgc[None, :]
        lab = labels.reshape(-1)[self._pix]
        myo = self._pix_ok & (lab == 2)
        sector = self._pix_ok & self.fan.sector_mask.reshape(-1)[self._pix]
        self.ref = float(np.median(env[myo] if myo.any() else env[sector])) + 1e-12
        self.noise_amp = self.ref * 10.0 ** (self.p.noise_db / 20.0)

    def _display(self, env: np.ndarray) -> np.ndarray:
        """Envelope -> TGC -> log compression -> scan conversion -> grey map: (H, W) image in [0, 1]."""
        p = self.p
        db = 20.0 * np.log10(env * (self.tgc[None, :] / np.float32(self.ref)) + np.float32(1e-6))
        level = np.clip(
            (db + np.float32(p.gain_db + p.dynamic_range_db * MYO_LEVEL)) / np.float32(p.dynamic_range_db), 0.0, 1.0
        )
        brightness = 3.0 * p.display_gain - 0.6  # 0.54-1.26 over the sampled display gains
        return np.clip(brightness * self.probe.scan_convert(level) ** (p.gray_gamma - 0.8), 0.0, 1.0)


def _jittered_grid(
    rng: np.random.Generator, r_span: tuple[float, float], t_span: tuple[float, float], dr: float, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """One uniform random point in every (dr x dt) cell of the (range, angle) box: (range mm, angle rad)."""
    nr, nt = int(math.ceil((r_span[1] - r_span[0]) / dr)), int(math.ceil((t_span[1] - t_span[0]) / dt))
    i, j = np.divmod(np.arange(nr * nt), nt)
    r = r_span[0] + (i + rng.uniform(size=i.size)) * ((r_span[1] - r_span[0]) / nr)
    t = t_span[0] + (j + rng.uniform(size=j.size)) * ((t_span[1] - t_span[0]) / nt)
    return r, t


def _texture(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma_mm``, sampled at (x, y) mm."""
    x0, y0 = float(x.min()) - 2.0, float(y.min()) - 2.0
    shape = (int(y.max() - y0) + 4, int(x.max() - x0) + 4)
    f = np.fft.irfft2(ndimage.fourier_gaussian(np.fft.rfft2(rng.standard_normal(shape)), sigma_mm, n=shape[1]), shape)
    f /= f.std() + 1e-12
    return ndimage.map_coordinates(f, np.stack([y - y0, x - x0]), order=1, mode="nearest")
