"""RF-line physics of the ``cole`` renderer: a phased-array probe, its pulse and beams, and the way from
point scatterers to a scan-converted B-mode image.

COLE (Gao et al., 2009, "A fast convolution-based methodology to simulate 2-D/3-D cardiac ultrasound
images", IEEE TUFFC 56(2)) replaces the space-variant 2-D convolution by one 1-D convolution per image
line: every scatterer is projected onto the lines that see it, weighted by the two-way lateral beam
profile at its depth, and each line is then convolved with the pulse. Here:

* pulse: a Gaussian-modulated sinusoid at ``f0`` with a -6 dB fractional bandwidth ``B`` (two-way), used
  as an analytic signal; a scatterer's sub-sample delay goes into the phase of its projection (the
  phase-based sub-sample delay of Storve & Torp, 2017), so speckle moves smoothly with the tissue;
* lateral profile: transmit with a fixed focus ``F`` through a rectangular aperture ``D = F / F-number``
  (the focal sinc, widened by the geometric cone ``D |1 - r / F|`` away from the focus) times receive
  with dynamic focus and an expanding Hann-apodised aperture (F-number 1.5 until it reaches ``D``):
  sinc^2-like and narrowest at the focus, wider in the near and far field, with side lobes;
* RF lines (real part of the analytic convolution) -> ``scipy.signal.hilbert`` envelope; a display
  image is area-averaged in range and scan converted with ``cv2.remap`` (linear between lines, so sparse
  beams leave line artefacts).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import fft, signal, special

from echokdm.phantom.fan import Fan
from echokdm.phantom.params import PhantomParams

SOUND_SPEED_MM_US = 1.54
RX_F_NUMBER = 1.5  # receive aperture grows with depth at this F-number until it spans the probe
SAMPLES_PER_PERIOD = 4  # RF samples per period of the received carrier (range period lambda / 2)
PROFILE_STEP_MM = 0.5  # depth step of the tabulated beam profile
PROFILE_SUB = 16  # tabulated lateral offsets per beam spacing
SUPPORT = 2.0  # lateral reach of a scatterer: this many lambda / D either side (receive main lobe)


def transmit_profile(x: np.ndarray, r: np.ndarray, lam: float, aperture: float, focus: float) -> np.ndarray:
    """Transmit amplitude at lateral distance ``x`` (mm) from the beam axis at depth ``r`` (mm).

    The focal diffraction pattern ``sinc(x D / (lam r))`` convolved with the geometric beam (a rect of
    width ``D |1 - r / F|``), scaled to unit energy per mm of aperture: 1 in the near field, a gain of
    ``sqrt(D^2 / (lam F))`` on axis at the focus.
    """
    w = lam * np.maximum(r, 1e-3) / aperture
    a = np.maximum(0.5 * aperture * np.abs(1.0 - r / focus), 0.05 * w)
    si = lambda z: special.sici(np.pi * z)[0] / np.pi  # noqa: E731
    prof = si((x + a) / w) - si((x - a) / w)
    # energy of that profile over all x (Parseval): int_{|f| < 1/2w} (2a sinc(2af))^2 df, per unit D
    f = np.linspace(0.0, 1.0, 257) * (0.5 / w)[..., None]
    dens = (2.0 * a[..., None] * np.sinc(2.0 * a[..., None] * f)) ** 2
    energy = 2.0 * np.trapezoid(dens, f, axis=-1)  # prof: the rect convolved with sinc(x/w)/w (FT rect(fw))
    return prof / np.sqrt(energy / aperture)


def receive_profile(x: np.ndarray, r: np.ndarray, lam: float, aperture: float) -> np.ndarray:
    """Receive amplitude (1 on axis) of a dynamically focused, Hann-apodised aperture that grows with
    depth at F-number ``RX_F_NUMBER`` up to ``aperture``: ``sinc(u) / (1 - u^2)``, ``u = x D_rx / (lam r)``."""
    r = np.maximum(r, 1e-3)
    d_rx = np.minimum(aperture, np.maximum(r / RX_F_NUMBER, lam))
    u = np.abs(x) * d_rx / (lam * r)
    near_one = np.abs(1.0 - u * u) < 1e-6
    return np.where(near_one, 0.5, np.sinc(u) / np.where(near_one, 1.0, 1.0 - u * u))


class ColeProbe:
    """A phased-array probe on the loop's fan: pulse, beams, projection, RF, envelope, scan conversion.

    Args:
        p: parameters (``frequency_mhz``, ``bandwidth``, ``f_number``, ``focus_mm``, ``n_beams``).
        fan: the loop's pixel grid and sector.
    """

    def __init__(self, p: PhantomParams, fan: Fan) -> None:
        self.fan = fan
        self.lam = SOUND_SPEED_MM_US / p.frequency_mhz
        self.k2 = 4.0 * math.pi / self.lam  # two-way wavenumber, rad per mm of range
        self.dr = self.lam / 2.0 / SAMPLES_PER_PERIOD
        self.n_r = int(math.ceil((fan.depth + 4.0) / self.dr)) + 1
        self.n_b = int(p.n_beams)
        self.dtheta = 2.0 * fan.half / (self.n_b - 1)
        self.aperture = p.focus_mm / p.f_number
        self.focus = p.focus_mm
        # pulse (two-way): Gaussian amplitude spectrum with -6 dB width B f0 -> range envelope sigma
        sigma_f = p.bandwidth * p.frequency_mhz / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        self.sigma_r = SOUND_SPEED_MM_US / (4.0 * math.pi * sigma_f)
        m = int(math.ceil(4.0 * self.sigma_r / self.dr))
        rp = np.arange(-m, m + 1) * self.dr
        self.pulse = (np.exp(-0.5 * (rp / self.sigma_r) ** 2) * np.exp(1j * self.k2 * rp)).astype(np.complex64)
        # lateral: taps per scatterer and the two-way profile table (depth x offset from the beam)
        self.K = int(math.ceil(SUPPORT * self.lam / self.aperture / self.dtheta + 0.5))  # nearest line is <= 0.5 off
        n_off = (self.K + 1) * PROFILE_SUB
        off = np.arange(-n_off, n_off + 1) * (self.dtheta / PROFILE_SUB)
        rr = np.arange(0.0, fan.depth + 8.0, PROFILE_STEP_MM)[:, None]
        x = rr * np.sin(off)[None, :]
        tx = transmit_profile(x, rr, self.lam, self.aperture, self.focus)
        self.profile = (tx * receive_profile(x, rr, self.lam, self.aperture)).astype(np.float32)
        self._n_off = n_off
        self._profile_flat = self.profile.astype(np.float64).ravel()
        self._scan_setup()

    # ---- geometry --------------------------------------------------------------------------------------
    def beam_angles(self) -> np.ndarray:
        """(n_b,) steering angle of each line (rad), spanning the sector edge to edge."""
        return np.arange(self.n_b) * self.dtheta - self.fan.half

    def sample_ranges(self) -> np.ndarray:
        """(n_r,) range of each RF sample (mm)."""
        return np.arange(self.n_r) * self.dr

    def resolution_cell(self) -> tuple[float, float]:
        """(axial mm, lateral rad): -6 dB pulse length and the far-field beam width ``lam / D``."""
        return 2.0 * math.sqrt(2.0 * math.log(2.0)) * self.sigma_r, self.lam / self.aperture

    # ---- scatterers -> lines -------------------------------------------------------------------------
    def project(self, r: np.ndarray, theta: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """(n_b, n_r) complex64 line projections of point scatterers (range mm, angle rad, amplitude).

        Each scatterer lands on its nearest RF sample of the 2K+1 lines around it, weighted by the
        two-way profile at its depth and offset, with its sub-sample delay as a carrier phase."""
        K, nb = self.K, self.n_b + 4 * self.K  # lines padded by 2K on each side, cut off at the end
        fb = (theta + self.fan.half) / self.dtheta
        ir = np.rint(r / self.dr).astype(np.intp)
        b0 = np.rint(fb).astype(np.intp)
        ok = (ir >= 0) & (ir < self.n_r) & (b0 >= -K) & (b0 < self.n_b + K)
        r, fb, ir, b0, amp = r[ok], fb[ok], ir[ok], b0[ok], amp[ok]
        ph = self.k2 * (ir * self.dr - r)
        a_re, a_im = amp * np.cos(ph), amp * np.sin(ph)
        row = np.minimum(np.rint(r / PROFILE_STEP_MM).astype(np.intp), self.profile.shape[0] - 1)
        base = row * self.profile.shape[1] + np.rint((b0 - fb) * PROFILE_SUB).astype(np.intp) + self._n_off
        taps = np.arange(-K, K + 1)
        w = np.take(self._profile_flat, base[:, None] + taps * PROFILE_SUB)  # (n, 2K+1) two-way weights
        idx = (((b0 + 2 * K) * self.n_r + ir)[:, None] + taps * self.n_r).ravel()
        size, keep = nb * self.n_r, slice(2 * K, 2 * K + self.n_b)
        out = np.empty((self.n_b, self.n_r), np.complex64)
        out.real = np.bincount(idx, (w * a_re[:, None]).ravel(), minlength=size).reshape(nb, self.n_r)[keep]
        out.imag = np.bincount(idx, (w * a_im[:, None]).ravel(), minlength=size).reshape(nb, self.n_r)[keep]
        return out

    def rf(self, lines: np.ndarray) -> np.ndarray:
        """(n_b, n_r) float32 RF lines: the projections convolved with the pulse along range."""
        return signal.oaconvolve(lines, self.pulse[None, :], mode="same", axes=1).real.astype(np.float32)

    def noise_gain(self) -> float:
        """Envelope rms of the RF made from unit-variance complex white projections."""
        return float(np.sqrt(np.sum(np.abs(self.pulse) ** 2)))

    def envelope(self, rf: np.ndarray) -> np.ndarray:
        """(n_b, n_r) envelope of RF lines (magnitude of their analytic signal, ``scipy.signal.hilbert``)."""
        return np.abs(signal.hilbert(rf, N=self._n_fft, axis=1)[:, : self.n_r]).astype(np.float32)

    # ---- display -----------------------------------------------------------------------------------------
    def _scan_setup(self) -> None:
        """Range decimation to half a pixel and the remap tables (pixel -> fractional sample, line)."""
        fan = self.fan
        self._n_fft = fft.next_fast_len(self.n_r)
        self.n_dec = max(2, int(round(self.n_r * self.dr / (0.5 * fan.spacing))))
        step = self.n_r / self.n_dec  # RF samples per decimated sample (cv2 INTER_AREA averages them)
        r, t = fan.pixel_polar()
        self._map_sample = ((r / self.dr + 0.5) / step - 0.5).astype(np.float32)
        self._map_line = ((t + fan.half) / self.dtheta).astype(np.float32)

    def scan_convert(self, lines: np.ndarray) -> np.ndarray:
        """(n_b, n_r) line image -> (H, W) float32 fan image: area average in range, linear remap."""
        dec = cv2.resize(np.ascontiguousarray(lines, np.float32), (self.n_dec, self.n_b), interpolation=cv2.INTER_AREA)
        img = cv2.remap(
            dec, self._map_sample, self._map_line, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        return np.where(self.fan.sector_mask, img, 0.0).astype(np.float32)

    def sample_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat pixel index (n_b, n_r) nearest to each RF sample, and whether it lies in the image."""
        t = self.beam_angles()[:, None]
        r = self.sample_ranges()[None, :]
        row, col = self.fan.mm_to_px(r * np.sin(t), r * np.cos(t))
        row, col = np.rint(row).astype(np.intp), np.rint(col).astype(np.intp)
        ok = (row >= 0) & (row < self.fan.H) & (col >= 0) & (col < self.fan.W)
        return np.where(ok, row * self.fan.W + col, 0), ok
