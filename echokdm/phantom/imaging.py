"""Image formation: moving scatterers -> beam-domain echo -> envelope -> log compression -> fan image.

The tissue is a cloud of point scatterers fixed in material coordinates, so the speckle moves with the
tissue instead of being redrawn (blood scatterers get a fresh random phase every frame: flowing blood
noise). Each frame, the scatterers' current positions are splatted as complex baseband echoes
``a exp(i phase)`` onto a polar (range, beam) grid and convolved with the point-spread function (Gaussian
main lobe, wider near the probe, plus a low lateral side-lobe skirt that leaks wall echo into the
cavities). The echo is attenuated with depth, shadowed at the sector edges and where the lateral wall
drops out, hazed by stationary near-field clutter and reverberation fog, corrupted by receiver noise,
envelope-detected, time-gain compensated, log compressed, mapped through a grey curve, scan converted to
the Cartesian sector and lightly smoothed (the scanner's speckle reduction).

The echogenicity levels and the grey map were tuned against a real SonoSite A4C loop
(``pipelines/bench/phantom_realism.py``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from echokdm.phantom.anatomy import BLOOD_CLASSES, EXTRA, LV_MYO, Anatomy, smoothstep
from echokdm.phantom.fan import Fan
from echokdm.phantom.params import PhantomParams

SOUND_SPEED_MM_US = 1.54
SIDELOBE_DB = -17.0  # side-lobe level relative to the main lobe
SIDELOBE_WIDTH = 6.0  # side-lobe skirt width relative to the main lobe
NEAR_FIELD_MM = 4.0  # narrowest lateral beam width (FWHM) in the near field
FOG_DB = -30.0  # diffuse reverberation fog everywhere, relative to myocardium
EXTRA_DB = -44.0  # tissue around the heart (lung, fat), relative to myocardium
CHEST_DB = -8.0  # chest wall layers above the apex
POSTERIOR_DB = 3.0  # bright structures behind the atria (AV groove, descending aorta, posterior pericardium)
EDGE_LOSS = 0.75  # amplitude lost at the sector edges (element directivity, lung)
MYO_LEVEL = 0.6  # position of the median myocardial echo in the dynamic range (before the gray map)
LEAFLET_DB = 10.0  # leaflet echo relative to myocardium
SCATTERERS_PER_CELL = 10.0  # per axial x lateral resolution cell: fully developed speckle


class Probe(Fan):
    """The fan plus the polar beam grid of this renderer and the scan conversion between them.

    Args:
        p: parameters (size, depth, sector angle, axial/lateral resolution).
    """

    def __init__(self, p: PhantomParams) -> None:
        super().__init__(p)
        # beam grid: sampled finely enough for the PSF (axial sigma / 1.5, lateral sigma / 1.5)
        self.sigma_r = p.axial_fwhm_mm / 2.3548
        self.sigma_t = math.radians(p.lateral_fwhm_deg) / 2.3548
        self.dr = self.sigma_r / 1.5
        self.dt = self.sigma_t / 1.5
        self.margin_t = 4.0 * self.dt
        self.nr = int(math.ceil((self.depth + 8.0) / self.dr)) + 1
        self.nt = int(math.ceil((2 * self.half + 2 * self.margin_t) / self.dt)) + 1
        # lateral main-lobe sigma (beam cells) per range row: constant angle in the far field, at least
        # NEAR_FIELD_MM wide (FWHM) near the transducer; rows grouped in bands of equal quantised sigma
        sig = np.maximum(1.5, NEAR_FIELD_MM / 2.3548 / np.maximum(self.beam_r(), 1e-3) / self.dt)
        level = np.minimum(np.round(np.log(sig / 1.5) / np.log(1.25)), 12).astype(int)
        edges = np.flatnonzero(np.diff(level)) + 1
        starts, stops = np.r_[0, edges], np.r_[edges, self.nr]
        self.lateral_bands = [(slice(a, b), 1.5 * 1.25 ** level[a]) for a, b in zip(starts, stops, strict=True)]
        r, t = self.pixel_polar()
        # bilinear scan-conversion taps for the pixels inside the sector
        fr, ft = self.polar_index(r[self.sector_mask], t[self.sector_mask])
        i, j = np.floor(fr).astype(np.intp), np.floor(ft).astype(np.intp)
        a, b = (fr - i).astype(np.float32), (ft - j).astype(np.float32)
        self._taps = np.stack([i * self.nt + j, i * self.nt + j + 1, (i + 1) * self.nt + j, (i + 1) * self.nt + j + 1])
        self._w = np.stack([(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b])
        self._flat = np.flatnonzero(self.sector_mask)

    def polar_index(self, r: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Range (mm) and angle (rad) -> fractional indices into the beam grid."""
        return r / self.dr, (t + self.half + self.margin_t) / self.dt

    def beam_r(self) -> np.ndarray:
        """(nr,) range of each beam-grid row in mm."""
        return np.arange(self.nr) * self.dr

    def beam_t(self) -> np.ndarray:
        """(nt,) angle of each beam in rad."""
        return np.arange(self.nt) * self.dt - self.half - self.margin_t

    def scan_convert(self, polar: np.ndarray) -> np.ndarray:
        """(nr, nt) beam-domain image -> (H, W) float32 Cartesian image, zero outside the sector."""
        flat = polar.reshape(-1)
        vals = np.einsum("kn,kn->n", flat[self._taps], self._w)
        out = np.zeros(self.H * self.W, np.float32)
        out[self._flat] = vals
        return out.reshape(self.H, self.W)


def _psf(grid: np.ndarray, bands: list[tuple[slice, float]]) -> np.ndarray:
    """Point-spread function on the beam grid: Gaussian main lobe (axial sigma 1.5 cells; lateral sigma
    per band of rows, wider in the near field where the beam is aperture-limited) plus a wide lateral
    side-lobe skirt SIDELOBE_DB below it (echo of bright walls leaking into cavities)."""
    axial = ndimage.gaussian_filter1d(grid, 1.5, axis=0, truncate=3.0)
    out = np.empty_like(axial)
    for rows, sigma in bands:
        out[rows] = ndimage.gaussian_filter1d(axial[rows], sigma, axis=1, truncate=3.0)
    side = ndimage.gaussian_filter1d(out, 1.5 * SIDELOBE_WIDTH, axis=1, truncate=2.5)
    return out + side * (10.0 ** (SIDELOBE_DB / 20.0) * math.sqrt(SIDELOBE_WIDTH))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma`` (cells)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f / (f.std() + 1e-12)


class EchoModel:
    """Scatterers, tissue echogenicity and the fixed parts of the acquisition for one loop.

    Args:
        p: parameters.
        anatomy: reference geometry (tissue classes of the scatterers).
        probe: sector geometry.
        rng: random generator (scatterers, textures, clutter).
    """

    def __init__(self, p: PhantomParams, anatomy: Anatomy, probe: Probe, rng: np.random.Generator) -> None:
        self.p, self.a, self.probe = p, anatomy, probe
        pr = probe
        self.two_k = 4.0 * math.pi * p.frequency_mhz / SOUND_SPEED_MM_US  # rad per mm of range
        # --- scatterers, uniform in (range, angle): constant count per resolution cell --------------
        t_lo, t_hi = -pr.half - 0.12, pr.half + 0.12
        r_hi = pr.depth + 6.0
        cells = (r_hi / (2.3548 * pr.sigma_r)) * ((t_hi - t_lo) / (2.3548 * pr.sigma_t))
        n = int(SCATTERERS_PER_CELL * cells)
        r = rng.uniform(0.5, r_hi, n)
        t = rng.uniform(t_lo, t_hi, n)
        x, y = r * np.sin(t), r * np.cos(t)
        U, V = anatomy.to_heart(x, y)
        cls = anatomy.tissue_class(U, V)
        db = self._echogenicity_db(cls, U, V, x, y, rng)
        amp = rng.standard_normal(n) * 10.0 ** (db / 20.0) * np.sqrt(r / 50.0)
        self.blood = np.isin(cls, BLOOD_CLASSES)
        self.U, self.V, self.amp, self.r = U, V, amp.astype(np.float64), r
        # per-mm^2 scatterer density at 50 mm (leaflet echoes are scaled to it)
        self.density50 = n / ((r_hi - 0.5) * (t_hi - t_lo) * 50.0)
        # --- fixed acquisition effects on the beam grid ---------------------------------------------
        rr = pr.beam_r()[:, None]
        tt = pr.beam_t()[None, :]
        att_db = p.attenuation_db_cm_mhz * p.frequency_mhz * 2.0 * rr / 10.0
        self.attenuation = (10.0 ** (-att_db / 20.0)).astype(np.float32)
        tgc_db = att_db + p.tgc_error_db * (rr / pr.depth - 0.5)
        self.tgc = (10.0 ** (tgc_db / 20.0)).astype(np.float32)
        self.shadow = self._dropout(rr, tt).astype(np.float32)
        self.clutter = (self._clutter(rr, rng) / self.tgc).astype(np.complex64)  # level set after TGC
        self.noise_amp = 0.0
        self.ref = 1.0
        self.leaflet_amp = 10.0 ** (LEAFLET_DB / 20.0)
        sector = pr.sector_mask.astype(np.float32)
        smooth = (
            ndimage.gaussian_filter(sector, p.smoothing_mm / pr.spacing, truncate=2.5) if p.smoothing_mm > 0 else sector
        )
        self._sector_weight = np.maximum(smooth, 1e-6)

    def calibrate(self, echo: np.ndarray, myo: np.ndarray) -> None:
        """Fix the display reference (median myocardial echo) and the receiver noise from the ED echo.

        Args:
            echo: (nr, nt) complex beam-domain echo of the reference frame.
            myo: (H, W) bool myocardium pixels of that frame.
        """
        env = self.probe.scan_convert(np.abs(echo * self.shadow * self.attenuation) * self.tgc)
        self.ref = float(np.median(env[myo])) if myo.any() else float(np.median(env[self.probe.sector_mask]))
        self.noise_amp = self.ref * 10.0 ** (self.p.noise_db / 20.0)

    # ---- tissue properties -----------------------------------------------------------------------------
    def _echogenicity_db(self, cls, U, V, x, y, rng) -> np.ndarray:
        """Echogenicity (dB relative to myocardium) of each scatterer from its class and textures."""
        p, a = self.p, self.a
        base = np.array([EXTRA_DB, p.blood_db, 0.0, p.blood_db, p.blood_db, p.blood_db, -2.0, 6.0, -12.0])
        db = base[cls].copy()
        # textures in reference image mm on a 1 mm grid: myocardial (fine) and surrounding tissue (coarse)
        gx0, gy0 = -_texture_half_width(self.probe), 0.0
        shape = (int(self.probe.depth + 12), int(2 * _texture_half_width(self.probe) + 2))
        fine = _smooth_noise(rng, shape, 1.5)
        coarse = _smooth_noise(rng, shape, (3.0, 6.0))
        coords = np.stack([y - gy0, x - gx0])
        fine_s = ndimage.map_coordinates(fine, coords, order=1, mode="nearest")
        coarse_s = ndimage.map_coordinates(coarse, coords, order=1, mode="nearest")
        tissue = ~np.isin(cls, BLOOD_CLASSES)
        db += np.where(tissue, 3.0 * fine_s, 0.0)
        extra = cls == EXTRA
        db += np.where(extra, 8.0 * coarse_s, 0.0)
        # chest wall: bright layers (skin, fat, muscle) above the heart
        chest = p.apex_depth_mm - 4.0
        layers = CHEST_DB + 4.0 * np.sin(2 * np.pi * y / (chest / 2.3) + 1.3) + 3.0 * coarse_s
        w = 1.0 - smoothstep((y - chest + 8.0) / 8.0)
        db = np.where(extra, (1.0 - w) * db + w * layers, db)
        # septum and the fibrous annuli are brighter; lateral wall fibres slightly darker
        db += np.where(cls == LV_MYO, np.where(V < 0, 6.0, -3.0), 0.0)
        for hu, hv in np.concatenate([a.mitral_hinges(), a.tricuspid_hinges()]):
            d2 = (U - hu) ** 2 + (V - hv) ** 2
            db += np.where(~np.isin(cls, BLOOD_CLASSES), 8.0 * np.exp(-d2 / (2 * 3.0**2)), 0.0)
        # posterior far field (behind the atria) is bright
        deepest = a.extent()["depth_heart"]
        rows = np.linspace(-a.t_ap, deepest, 200)
        lo, hi = a.heart_interval(rows, 0.0)
        v_lo, v_hi = np.nanmin(lo), np.nanmax(hi)
        beside = smoothstep((V - v_lo + 5.0) / 10.0) * (1.0 - smoothstep((V - v_hi - 5.0) / 10.0))
        band = smoothstep((y - deepest + 28.0) / 15.0) * (1.0 - smoothstep((y - deepest + 2.0) / 15.0)) * beside
        db = np.where(extra, (1.0 - band) * db + band * (POSTERIOR_DB + 4.0 * coarse_s), db)
        return db

    def _dropout(self, rr: np.ndarray, tt: np.ndarray) -> np.ndarray:
        """Amplitude factor (nr, nt) of a shadow over the LV lateral wall (rib / lung / incidence)."""
        a, p = self.a, self.p
        U = np.array([0.45 * a.L])
        _, wl_e = a.lv_epi(U)
        x, y = a.to_image(U, wl_e - a.t_lat / 2)
        t0, r0 = float(np.arctan2(x, y)[0]), float(np.hypot(x, y)[0])
        wt = np.exp(-0.5 * ((tt - t0) / math.radians(6.0)) ** 2)
        wr = smoothstep((rr - 0.6 * r0) / (0.5 * r0))
        edge = 1.0 - EDGE_LOSS * smoothstep((np.abs(tt) - 0.55 * self.probe.half) / (0.45 * self.probe.half))
        return (1.0 - 0.92 * p.dropout * wt * wr) * edge

    def _clutter(self, rr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Stationary near-field clutter (reverberation haze) on the beam grid, relative amplitude."""
        p, pr = self.p, self.probe
        shape = (pr.nr, pr.nt)
        field = _smooth_noise(rng, shape, (1.0, 4.0)) + 1j * _smooth_noise(rng, shape, (1.0, 4.0))
        reach = p.apex_depth_mm + 30.0
        env = np.exp(-rr / (0.45 * reach)) * (1.0 + 0.6 * np.cos(2 * np.pi * rr / (p.apex_depth_mm / 2.0)) ** 2)
        near = 10.0 ** (-2.0 / 20.0) * p.haze * env
        fog = 10.0 ** (FOG_DB / 20.0) * (0.5 + p.haze) * np.exp(-rr / 150.0)
        return (near + fog) * field / math.sqrt(2.0)

    # ---- one frame -------------------------------------------------------------------------------------
    def phase(self, r: np.ndarray, r_ref: np.ndarray) -> np.ndarray:
        """Echo phase of scatterers now at range ``r`` that were at ``r_ref`` in the reference frame:
        ``2k (r_ref + coupling (r - r_ref))`` — coupling 1 is the physical round-trip phase (speckle
        decorrelates under strain), 0 keeps each scatterer's phase (speckle deforms with the tissue)."""
        return self.two_k * (r_ref + self.p.phase_coupling * (r - r_ref))

    def beamform(self, x: np.ndarray, y: np.ndarray, amp: np.ndarray, ph: np.ndarray) -> np.ndarray:
        """Complex baseband echo (nr, nt) of point scatterers at image mm (x, y) with amplitudes ``amp``
        and phases ``ph`` (rad)."""
        pr = self.probe
        r = np.hypot(x, y)
        fr, ft = pr.polar_index(r, np.arctan2(x, y))
        i, j = np.floor(fr).astype(np.intp), np.floor(ft).astype(np.intp)
        ok = (i >= 0) & (i < pr.nr - 1) & (j >= 0) & (j < pr.nt - 1)
        i, j, fr, ft, ph, amp = i[ok], j[ok], fr[ok], ft[ok], ph[ok], amp[ok]
        a, b = fr - i, ft - j
        base = i * pr.nt + j
        idx = np.concatenate([base, base + 1, base + pr.nt, base + pr.nt + 1])
        w = np.concatenate([(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b]) * np.tile(amp, 4)
        size = pr.nr * pr.nt
        re = np.bincount(idx, w * np.tile(np.cos(ph), 4), minlength=size)
        im = np.bincount(idx, w * np.tile(np.sin(ph), 4), minlength=size)
        z = np.empty((pr.nr, pr.nt), np.complex64)
        z.real = _psf(re.reshape(pr.nr, pr.nt).astype(np.float32), pr.lateral_bands)
        z.imag = _psf(im.reshape(pr.nr, pr.nt).astype(np.float32), pr.lateral_bands)
        return z

    def to_image(self, echo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Beam-domain echo -> (H, W) float32 gray image in [0, 1] (zero outside the sector)."""
        p, pr = self.p, self.probe
        z = echo * self.shadow * self.attenuation + self.clutter * self.ref
        noise = rng.standard_normal((2, pr.nr, pr.nt)).astype(np.float32)
        z = z + (noise[0] + 1j * noise[1]) * (self.noise_amp / math.sqrt(2.0))
        env = np.abs(z) * self.tgc
        db = 20.0 * np.log10(env / self.ref + 1e-6) + p.gain_db
        level = np.clip((db + p.dynamic_range_db * MYO_LEVEL) / p.dynamic_range_db, 0.0, 1.0)
        img = pr.scan_convert(p.display_gain * level**p.gray_gamma)
        if p.smoothing_mm > 0:  # the scanner's speckle-reduction filter, normalised inside the sector
            img = ndimage.gaussian_filter(img, p.smoothing_mm / pr.spacing, truncate=2.5) / self._sector_weight
            img[~pr.sector_mask] = 0.0
        return np.clip(img, 0.0, 1.0).astype(np.float32)


def draw_ui(frames: np.ndarray, probe: Fan, p: PhantomParams, times: np.ndarray, cycle) -> np.ndarray:
    """Burn scanner-like annotations into the frames *outside* the sector: text, depth marks, ECG trace.

    Args:
        frames: (T, H, W) float32 images (modified copy returned).
        probe: the fan.
        p: parameters (text content).
        times: (T,) ms since the first ED; the ECG's R wave sits on every ED.
        cycle: the :class:`~echokdm.phantom.motion.CardiacCycle`.

    Returns:
        (T, H, W) float32 frames with the overlay.
    """
    T, H, W = frames.shape
    ui = np.zeros((H, W), np.uint8)
    scale = max(0.28, H / 700.0)
    line = max(10, int(round(26 * scale)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    left = ["ECHOKDM", "A4C", f"{p.frequency_mhz:.1f}MHz"]
    right = [f"HR {p.heart_rate_bpm:.0f}", f"{1000.0 / p.frame_time_ms:.0f}Hz", f"D{p.depth_mm / 10:.0f}cm"]
    for k, text in enumerate(left):
        cv2.putText(ui, text, (2, line * (k + 1)), font, scale, 220, 1, cv2.LINE_AA)
    for k, text in enumerate(right):
        (tw, _), _ = cv2.getTextSize(text, font, scale, 1)
        cv2.putText(ui, text, (W - tw - 3, line * (k + 1)), font, scale, 220, 1, cv2.LINE_AA)
    # depth marks every cm just outside the right sector edge
    for d in np.arange(10.0, probe.depth + 1e-6, 10.0):
        x, y = (d * math.sin(probe.half) + 2.5 * probe.spacing, d * math.cos(probe.half))
        r, c = probe.mm_to_px(np.array(x), np.array(y))
        cv2.circle(ui, (int(round(float(c))), int(round(float(r)))), max(1, H // 256), 200, -1)
    # ECG: a sweep across the bottom, R wave at each ED
    base = int(H * 0.94)
    amp = H * 0.045
    ts = np.linspace(times[0], times[-1], W)
    ph = cycle.phase_ms(ts)
    ph = np.where(ph > cycle.cycle_ms - 200.0, ph - cycle.cycle_ms, ph)

    def g(mu: float, sd: float, a: float) -> np.ndarray:
        return a * np.exp(-0.5 * ((ph - mu) / sd) ** 2)

    ecg = g(-150, 25, 0.15) + g(-22, 8, -0.12) + g(0, 9, 1.0) + g(25, 10, -0.25) + g(cycle.t_es - 70, 45, 0.3)
    pts = np.stack([np.arange(W), base - amp * ecg], 1).round().astype(np.int32)
    cv2.polylines(ui, [pts], False, 190, 1, cv2.LINE_AA)
    out = frames.copy()
    outside = ~probe.sector_mask
    for t in range(T):
        img = ui.copy()
        col = int(round(np.interp(times[t], ts, np.arange(W))))
        cv2.line(img, (col, base - int(1.3 * amp)), (col, base + int(0.4 * amp)), 255, 1)
        out[t][outside] = np.maximum(out[t][outside], img[outside] / 255.0)
    return out


def _texture_half_width(probe: Fan) -> float:
    """Half width (mm) of the texture grid around the sector."""
    return probe.depth * math.sin(probe.half) + 15.0
