"""Cardiac cycle and the exact, invertible deformation of the phantom heart.

The deformation ``phi_t`` maps material points (heart frame at end-diastole, mm) to their position at
time ``t``. It is the composition of two *triangular* maps, each piecewise linear in one coordinate with
knots that follow the anatomy, so both directions are closed-form:

* ``M1`` (longitudinal): ``u = U + c(t) W(V) a(U; V)`` — the atrioventricular plane moves towards the
  apex (MAPSE / TAPSE), the apical wall thickens, the atria stretch; ``W`` fades the motion out
  beside the heart.
* ``M2`` (transverse): ``v = V + b(V; u)`` — per row, the LV and RV cavities shrink, the walls thicken
  (the endocardium moves more than the epicardium), the atria widen while they fill; the row's knots are
  the material wall positions of that row, so they move with the tissue.

Inverse: ``V = M2^-1(v; u)`` then ``U = M1^-1(u; V)``. Labels at time ``t`` are the reference labels
pulled through the inverse, so masks, volumes and displacement fields agree exactly.
"""

from __future__ import annotations

import math

import numpy as np

from echokdm.errors import InputError
from echokdm.phantom.anatomy import ATRIAL_WALL_MM, Anatomy, smoothstep
from echokdm.phantom.params import PhantomParams

DECAY_MM = 22.0  # distance over which wall motion fades out into the surrounding tissue
MIN_JACOBIAN = 0.05  # every piecewise-linear segment keeps at least this stretch factor (cavities may nearly empty)
_EPS = 0.05  # minimum knot spacing (mm)
TABLE_STEP_MM = 0.1  # resolution of the tabulated knots


class CardiacCycle:
    """Timing of one heart beat and the normalised state curves, periodic in ``cycle_ms``.

    ``c`` is the LV/RV contraction (0 at ED, 1 at ES: isovolumic contraction, ejection, isovolumic
    relaxation, rapid filling, diastasis, atrial kick), ``e`` the atrial filling (0 at ED when the atria
    have just contracted, 1 at ES), ``o_mv`` / ``o_tv`` the opening of the mitral / tricuspid valves.

    Args:
        p: parameters (heart rate, target EF, atrial fraction).
    """

    def __init__(self, p: PhantomParams) -> None:
        hr = p.heart_rate_bpm
        self.cycle_ms = T = p.cycle_ms
        sick = float(np.clip((55.0 - p.target_ef) / 40.0, 0.0, 1.0))
        self.ivc = 45.0 * min(1.0, T / 700.0) + 10.0 * sick
        self.lvet = float(np.clip(413.0 - 1.7 * hr, 170.0, 340.0)) * (1.0 - 0.12 * sick) * min(1.0, 1.25 * T / 857.0)
        self.t_es = self.ivc + self.lvet
        self.ivr = 70.0 * min(1.0, T / 700.0) + 20.0 * sick
        rest = T - self.t_es - self.ivr
        if rest < 120.0:
            raise InputError(f"heart rate {hr:g} bpm leaves no time for diastole")
        self.rf = float(np.clip(0.45 * rest, 0.5 * rest if rest < 300 else 120.0, 190.0))
        self.ac = float(np.clip(0.3 * rest, 60.0, 140.0))
        if self.rf + self.ac > rest:
            self.rf, self.ac = 0.6 * rest, 0.4 * rest
        self.dias = rest - self.rf - self.ac
        self.af = p.atrial_fraction
        self.slow = 0.06 * min(1.0, self.dias / 200.0)  # filling during diastasis
        self.gamma_la = 0.6

    def phase_ms(self, t_ms: np.ndarray | float) -> np.ndarray:
        """Time since the last ED (ms)."""
        return np.mod(np.asarray(t_ms, dtype=np.float64), self.cycle_ms)

    def state(self, t_ms: np.ndarray | float) -> dict[str, np.ndarray]:
        """``{"c", "e", "o_mv", "o_tv"}`` at times ``t_ms`` (ms since the first ED)."""
        t = self.phase_ms(t_ms)
        t1, t2 = self.t_es, self.t_es + self.ivr
        t3, t4 = t2 + self.rf, t2 + self.rf + self.dias
        af, slow = self.af, self.slow
        ej = smoothstep(np.clip((t - self.ivc) / self.lvet, 0, 1) ** 0.8)
        rf = 1.0 - (1.0 - af - slow) * smoothstep(np.clip((t - t2) / self.rf, 0, 1) ** 0.7)
        di = af + slow * (1.0 - np.clip((t - t3) / max(self.dias, 1e-6), 0, 1))
        ac = af * (1.0 - smoothstep((t - t4) / self.ac))
        c = np.select([t < t1, t < t2, t < t3, t < t4], [ej, np.ones_like(t), rf, di], ac)
        relax = smoothstep(t / (self.ivc + 120.0))
        q = np.where(t < t4, relax, 1.0 - smoothstep((t - t4) / self.ac))
        e = (c + self.gamma_la * q) / (1.0 + self.gamma_la)
        # mitral valve: opens at the start of rapid filling (E), semi-closes in diastasis, reopens (A)
        e_wave = smoothstep((t - t2) / 40.0) * (1.0 - 0.55 * smoothstep((t - t2 - 0.6 * self.rf) / (0.5 * self.rf + 1)))
        a_wave = 0.45 * smoothstep((t - t4 + 20.0) / 40.0)
        close = 1.0 - smoothstep((t - (self.cycle_ms - 35.0)) / 35.0)
        o = np.where(t < t2, 0.0, np.clip(e_wave + a_wave, 0.0, 1.0) * close)
        o_tv = np.where(t < t2 - 15.0, 0.0, np.clip(e_wave + a_wave, 0, 1) * close)
        return {"c": c, "e": e, "o_mv": o, "o_tv": o_tv}


def _segment(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Flat index into ``k`` (N, K) of the first knot of the segment holding ``x`` (N,), clipped to the ends."""
    n, K = k.shape
    return np.clip(np.sum(x[:, None] >= k, axis=1) - 1, 0, K - 2) + np.arange(n) * K


def _pl_displace(x: np.ndarray, kx: np.ndarray, kd: np.ndarray) -> np.ndarray:
    """Piecewise-linear displacement at ``x`` (N,) given per-point knots ``kx``/``kd`` (N, K); zero
    outside the knot range (the first and last displacements are zero)."""
    i = _segment(x, kx)
    fx, fd = kx.ravel(), kd.ravel()
    x0, x1, d0, d1 = fx[i], fx[i + 1], fd[i], fd[i + 1]
    t = np.clip((x - x0) / (x1 - x0), 0.0, 1.0)
    return d0 + t * (d1 - d0)


def _pl_inverse(y: np.ndarray, kx: np.ndarray, kd: np.ndarray) -> np.ndarray:
    """Solve ``x + d(x) = y`` for the map of :func:`_pl_displace` (monotone knots required)."""
    ky = kx + kd
    i = _segment(y, ky)
    fy, fx = ky.ravel(), kx.ravel()
    y0, y1, x0, x1 = fy[i], fy[i + 1], fx[i], fx[i + 1]
    t = (y - y0) / (y1 - y0)
    inside = (t >= 0.0) & (t <= 1.0)
    return np.where(inside, x0 + t * (x1 - x0), y)


def _lookup(table: tuple, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Tabulated knot arrays ``(x0, step, *arrays (n, K))`` at the table rows nearest to ``x`` (N,).

    Forward and inverse maps look up the same row for the same point, so the maps stay exact inverses;
    the table step only sets how finely the knots follow the anatomy."""
    x0, step, *arrays = table
    i = np.clip(np.rint((x - x0) / step).astype(np.intp), 0, arrays[0].shape[0] - 1)
    return tuple(arr[i] for arr in arrays)


def _monotone(k: np.ndarray) -> np.ndarray:
    """Knots (N, K) made strictly increasing along the knot axis."""
    return np.maximum.accumulate(k + _EPS * np.arange(k.shape[1]), axis=1)


def _nz(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a, nan=0.0)


class Deformation:
    """The deformation ``phi`` of one subject; ``scale`` (contractility) is calibrated to the target EF.

    Args:
        anatomy: the reference geometry.
        cycle: the cardiac cycle (for the end-systolic atrial state).
        scale: contractility; default: solved so that the area-length EF at ES equals ``target_ef``.

    Raises:
        InputError: the target EF cannot be reached by an invertible deformation of this heart.
    """

    def __init__(self, anatomy: Anatomy, cycle: CardiacCycle, scale: float | None = None) -> None:
        self.a = anatomy
        self.cycle = cycle
        p = anatomy.p
        self.p = p
        es = cycle.state(cycle.t_es)
        self.es_state = (float(es["c"]), float(es["e"]))
        self.scale = 1.0 if scale is None else float(scale)
        self._tu = self._tv = None
        if scale is None:
            self.scale = self._calibrate(p.target_ef)
        self._build_tables()

    # ---- motion amplitudes (per unit contraction) ---------------------------------------------------
    def _hypo(self, U: np.ndarray, wall: str) -> np.ndarray:
        p = self.p
        if p.hypokinesis == "none" or (p.hypokinesis != "apical" and p.hypokinesis != wall):
            return np.ones_like(U)
        centre = 0.1 if p.hypokinesis == "apical" else p.hypokinesis_center
        x = (U / self.a.L - centre) / 0.18
        return 1.0 - p.hypokinesis_severity * np.exp(-0.5 * x * x)

    def _m1_parts(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """M1 at material ``V``: atrioventricular plane row, atrial roof row (both material U), and the
        displacements per unit contraction of the apical endocardium and of the AV plane (tabulated
        once the contractility is known)."""
        if self._tv is not None:
            x0, step, table = self._tv
            return tuple(table[:, np.clip(np.rint((V - x0) / step).astype(np.intp), 0, table.shape[1] - 1)])
        a, p, k = self.a, self.p, self.scale
        tvs, tvl = a.tricuspid_hinges()[:, 1]
        L_av = np.interp(V, [tvs - 2.0, -a.ws_a - 2.0], [a.l_tv, a.L])
        bottom = np.interp(V, [tvs - 2.0, -a.ws_a - 2.0], [a.ra.uc + a.ra.a, a.la.uc + a.la.a]) + ATRIAL_WALL_MM
        d_lv = 0.16 * a.L * p.long_ratio * k
        k_rv = p.rv_function * min(1.0, 0.4 + 0.6 * k)
        d_tv = 0.3 * (a.l_tv - a.u_rva) * k_rv
        d = np.interp(V, [tvl, tvs, -a.ws_a, 0.0, a.wl_a], [d_tv, 0.8 * d_tv, 0.8 * d_lv, 0.9 * d_lv, d_lv])
        apical = 1.0 - (p.hypokinesis_severity if p.hypokinesis == "apical" else 0.0)
        dap = p.thickening * a.t_ap * k * apical
        left = float(tvl) - a.t_rv - 6.0
        right = a.wl_max + a.t_lat + 6.0
        W = 1.0 - smoothstep(np.maximum(left - V, V - right) / 25.0)
        return L_av, bottom, dap * W, -d * W

    def _m1_knots(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Knots (N, 6) in U and longitudinal displacement per unit contraction at material ``V``:
        still above the apex, apical thickening at the endocardial apex, the AV plane moving towards the
        apex, the atria stretching back to their fixed roof."""
        L_av, bottom, A, B = self._m1_parts(V)
        z = np.zeros_like(L_av)
        kx = np.stack([z - self.a.t_ap - 20.0, z - self.a.t_ap, z, L_av, bottom, bottom + 15.0], -1)
        kd = np.stack([z, z, A, B, z, z], -1)
        return kx, kd

    def _m1_forward(self, U: np.ndarray, V: np.ndarray, c: float) -> np.ndarray:
        """u = M1(U; V): the piecewise-linear profile of :meth:`_m1_knots`, evaluated segment by segment."""
        L_av, bottom, A, B = self._m1_parts(V)
        A, B = c * A, c * B
        j1 = -self.a.t_ap
        d = np.select(
            [(U > j1) & (U < 0.0), (U >= 0.0) & (U < L_av), (U >= L_av) & (U < bottom)],
            [A * (U - j1) / -j1, A + (B - A) * U / L_av, B * (bottom - U) / (bottom - L_av)],
            0.0,
        )
        return U + d

    def _m1_inverse(self, u: np.ndarray, V: np.ndarray, c: float) -> np.ndarray:
        """U = M1^-1(u; V)."""
        L_av, bottom, A, B = self._m1_parts(V)
        A, B = c * A, c * B
        j1 = -self.a.t_ap
        y2, y3 = A, L_av + B
        return np.select(
            [(u > j1) & (u < y2), (u >= y2) & (u < y3), (u >= y3) & (u < bottom)],
            [
                j1 + (u - j1) * -j1 / (y2 - j1),
                (u - y2) * L_av / (y3 - y2),
                L_av + (u - y3) * (bottom - L_av) / (bottom - y3),
            ],
            u,
        )

    def _m2_knots(self, Uh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Knots (N, 8) in V and transverse displacements per unit contraction and per unit atrial
        filling on rows whose material coordinate is ``Uh``."""
        a, p, k = self.a, self.p, self.scale
        Uv = np.clip(Uh, -a.t_ap - 1.0, a.L)
        ws, wl = (_nz(w) for w in a.lv_endo(Uv))
        ws_e, wl_e = (_nz(w) for w in a.lv_epi(Uv))
        rvw, rvo = _nz(a.rv(Uv)), _nz(a.rv(Uv, a.t_rv))
        v_sr = -ws_e
        fs = 0.33 * k * (1.0 - 0.45 * smoothstep((Uv - 0.55 * a.L) / (0.45 * a.L)))
        taper = smoothstep(Uv / (0.3 * a.L))
        hs, hl = self._hypo(Uv, "septal"), self._hypo(Uv, "lateral")
        d_s, d_l = 0.85 * fs * ws * hs, 1.1 * fs * wl * hl
        th_s = p.thickening * a.t_sep * k * taper * hs
        th_l = p.thickening * a.t_lat * k * taper * hl
        k_rv = p.rv_function * min(1.0, 0.4 + 0.6 * k)
        th_rv = 0.3 * a.t_rv * k_rv * smoothstep(rvw / 5.0)
        vent_x = np.stack([v_sr - rvo - DECAY_MM, v_sr - rvo, v_sr - rvw, v_sr, -ws, wl, wl_e, wl_e + DECAY_MM])
        z = np.zeros_like(Uh)
        pres = smoothstep(rvw / 5.0)  # rows without RV cavity move with the septum
        b3 = d_s - th_s
        b2 = b3 + pres * 0.2 * rvw * k_rv  # the RV free wall closes in on the septum
        vent_d = np.stack([z, b2 - th_rv, b2, b3, d_s, -d_l, -d_l + th_l, z])
        # atrial rows
        Ua = np.maximum(Uh, a.l_tv)
        la_hw = _nz(np.where(Ua >= a.L, a.la.half_width(Ua), np.nan))
        ra_hw = _nz(a.ra.half_width(Ua))
        sep = a.septum_right(np.maximum(Ua, a.L))
        sep = np.where(np.isnan(sep), a.la.vc, sep)
        v_sep = np.where(Ua >= a.L, sep, v_sr)
        la_l = np.where(Ua >= a.L, a.la.vc - la_hw, -ws)
        la_r = np.where(Ua >= a.L, a.la.vc + la_hw, wl)
        atr_x_r = np.stack([la_l, la_r, la_r + ATRIAL_WALL_MM, la_r + ATRIAL_WALL_MM + DECAY_MM])
        atr_x_l = np.stack([a.ra.vc - ra_hw - ATRIAL_WALL_MM - DECAY_MM, a.ra.vc - ra_hw - ATRIAL_WALL_MM,
                            a.ra.vc - ra_hw, v_sep])
        exp_la, exp_ra = 0.18 * la_hw, 0.15 * ra_hw
        atr_d_l = np.stack([z, -exp_ra, -exp_ra, -0.04 * la_hw])
        atr_d_r = np.stack([-0.04 * la_hw, exp_la, exp_la, z])
        s_tv = smoothstep((Uh - a.l_tv + 4.0) / 8.0)
        s_mv = smoothstep((Uh - a.L + 4.0) / 8.0)
        kx = np.concatenate([(1 - s_tv) * vent_x[:3] + s_tv * atr_x_l[:3],
                             (1 - s_mv) * vent_x[3:4] + s_mv * atr_x_l[3:4],
                             (1 - s_mv) * vent_x[4:] + s_mv * atr_x_r])
        kd_c = np.concatenate([(1 - s_tv) * vent_d[:3], (1 - s_mv) * vent_d[3:4], (1 - s_mv) * vent_d[4:]])
        kd_e = np.concatenate([s_tv * atr_d_l[:3], s_mv * atr_d_l[3:4], s_mv * atr_d_r])
        return _monotone(kx.T), kd_c.T, kd_e.T

    def _build_tables(self) -> None:
        """Tabulate M1 (over V) and the M2 knots (over rows U) for fast per-point lookup; find the box."""
        a = self.a
        v0, v1 = -160.0, 130.0
        u0, u1 = -a.t_ap - 60.0, a.L + max(a.p.la_length_mm, a.p.ra_length_mm) + 60.0
        Vg, Ug = np.arange(v0, v1, TABLE_STEP_MM), np.arange(u0, u1, TABLE_STEP_MM)
        self._tu = (u0, TABLE_STEP_MM, *self._m2_knots(Ug))
        self._tv = (v0, TABLE_STEP_MM, np.stack(self._m1_parts(Vg)))
        self._kd_cache: tuple[float, float, np.ndarray] | None = None
        # box (material = current coordinates) outside which the map is the identity
        kx1, kd1 = self._m1_knots(Vg)
        kx2, kd_c, kd_e = self._tu[2:]
        rows = np.flatnonzero((np.abs(kd_c) + np.abs(kd_e)).max(axis=1) > 0)
        cols = np.flatnonzero(np.abs(kd1).max(axis=1) > 0)
        self.box = (
            min(kx1[:, 0].min(), Ug[rows].min()) - 1.0,
            max(kx1[:, -1].max(), Ug[rows].max()) + 1.0,
            min(kx2[rows, 0].min(), Vg[cols].min()) - 1.0,
            max(kx2[rows, -1].max(), Vg[cols].max()) + 1.0,
        )

    def _knots2(self, Uh: np.ndarray, c: float, e: float) -> tuple[np.ndarray, np.ndarray]:
        if self._tu is None:
            kx, kd_c, kd_e = self._m2_knots(Uh)
            return kx, c * kd_c + e * kd_e
        x0, step, kx, kd_c, kd_e = self._tu
        if self._kd_cache is None or self._kd_cache[:2] != (c, e):
            self._kd_cache = (c, e, c * kd_c + e * kd_e)
        return _lookup((x0, step, kx, self._kd_cache[2]), Uh)

    def in_box(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Points (heart frame, mm) inside the box where the deformation is not the identity."""
        u0, u1, v0, v1 = self.box
        return (a > u0) & (a < u1) & (b > v0) & (b < v1)

    # ---- the maps ------------------------------------------------------------------------------------
    def _u_hat(self, u: np.ndarray, c: float) -> np.ndarray:
        """Material U on the centre line of the row now at ``u`` (knots of M2 follow it)."""
        kx, kd = self._m1_knots(np.zeros(1))
        return np.interp(u, (kx + c * kd)[0], kx[0])

    def forward(
        self, U: np.ndarray, V: np.ndarray, c: float, e: float, inside: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Material (U, V) -> current (u, v) at contraction ``c`` and atrial filling ``e`` (mm).

        ``inside=True`` promises that every point lies in :attr:`box` (skips the test)."""
        return self._apply(self._forward, U, V, c, e, inside)

    def inverse(
        self, u: np.ndarray, v: np.ndarray, c: float, e: float, inside: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Current (u, v) -> material (U, V); exact inverse of :meth:`forward`."""
        return self._apply(self._inverse, u, v, c, e, inside)

    def _apply(
        self, body, a: np.ndarray, b: np.ndarray, c: float, e: float, inside: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``body`` on the points inside the box (once it is known); the identity elsewhere."""
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        if c == 0.0 and e == 0.0:
            return a.copy(), b.copy()
        if self._tu is None or inside:
            return body(a, b, c, e)
        m = self.in_box(a, b)
        out_a, out_b = a.copy(), b.copy()
        out_a[m], out_b[m] = body(a[m], b[m], c, e)
        return out_a, out_b

    def _forward(self, U: np.ndarray, V: np.ndarray, c: float, e: float) -> tuple[np.ndarray, np.ndarray]:
        u = self._m1_forward(U, V, c)
        kx, kd = self._knots2(self._u_hat(u, c), c, e)
        return u, V + _pl_displace(V, kx, kd)

    def _inverse(self, u: np.ndarray, v: np.ndarray, c: float, e: float) -> tuple[np.ndarray, np.ndarray]:
        kx, kd = self._knots2(self._u_hat(u, c), c, e)
        V = _pl_inverse(v, kx, kd)
        return self._m1_inverse(u, V, c), V

    def min_stretch(self, c: float, e: float) -> float:
        """Smallest segment stretch factor of M1 and M2 over the heart (> 0 means invertible)."""
        a = self.a
        U = np.linspace(-a.t_ap - 25.0, a.L + max(a.p.la_length_mm, a.p.ra_length_mm) + 20.0, 300)
        V = np.linspace(-120.0, 80.0, 300)
        kx, kd = self._m1_knots(V)
        s1 = np.diff(kx + c * kd, axis=1) / np.diff(kx, axis=1)
        kx, kd = self._knots2(U, c, e)
        s2 = np.diff(kx + kd, axis=1) / np.diff(kx, axis=1)
        return float(min(s1.min(), s2.min()))

    # ---- LV volume by the area-length method ---------------------------------------------------------
    def lv_area_length(self, c: float, e: float) -> tuple[float, float]:
        """(area mm^2, long-axis length mm) of the deformed LV cavity contour."""
        con = self.a.lv_contour()
        u, v = self.forward(con[:, 0], con[:, 1], c, e)
        area = 0.5 * abs(float(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1))))
        h = self.a.mitral_hinges()
        hu, hv = self.forward(h[:, 0], h[:, 1], c, e)
        length = float(np.max(np.hypot(u - hu.mean(), v - hv.mean())))
        return area, length

    def _calibrate(self, target_ef: float) -> float:
        def ef(scale: float) -> float:
            self.scale = scale
            a0, l0 = self.lv_area_length(0.0, 0.0)
            a1, l1 = self.lv_area_length(*self.es_state)
            return 100.0 * (1.0 - (a1 * a1 / l1) / (a0 * a0 / l0))

        def invertible(scale: float) -> bool:
            self.scale = scale
            return self.min_stretch(*self.es_state) > MIN_JACOBIAN

        hi = 0.25
        while hi < 4.0 and invertible(hi * 1.2):
            hi *= 1.2
        lo_inv, hi_inv = hi, hi * 1.2  # refine the largest invertible contractility
        for _ in range(12):
            mid = 0.5 * (lo_inv + hi_inv)
            lo_inv, hi_inv = (mid, hi_inv) if invertible(mid) else (lo_inv, mid)
        hi = lo_inv
        if ef(hi) < target_ef:
            raise InputError(
                f"target EF {target_ef:g}% is not reachable for this heart (at most {ef(hi):.0f}%); "
                "lower the EF or change the anatomy"
            )
        lo = 0.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ef(mid) < target_ef else (lo, mid)
        self.scale = 0.5 * (lo + hi)
        return self.scale


class Valves:
    """Mitral and tricuspid leaflets: thin bright scatterer strips hinged at the moving annuli.

    Leaflets are not tissue of the label map (they move relative to it), so they are drawn from their
    own kinematics: closed, they run from each hinge towards the other and meet slightly on the
    ventricular side of the annulus; opening, they swing towards the apex.

    Args:
        anatomy: reference geometry (hinge points).
        rng: random generator for the leaflet scatterers.
        density: scatterers per mm^2 of leaflet.
    """

    THICKNESS_MM = 1.6
    LENGTHS = (0.66, 0.46, 0.60, 0.55)  # AML, PML, septal TV, anterior TV, as fractions of the annulus
    OPEN_DEG = (80.0, 70.0, 75.0, 75.0)
    CLOSED_DEG = 18.0

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator, density: float) -> None:
        self.hinges = np.concatenate([anatomy.mitral_hinges(), anatomy.tricuspid_hinges()])
        width = np.hypot(*(self.hinges[1] - self.hinges[0])), np.hypot(*(self.hinges[3] - self.hinges[2]))
        self.length = np.array([f * width[i // 2] for i, f in enumerate(self.LENGTHS)]) + 2.0
        n = [max(8, int(density * ln * self.THICKNESS_MM)) for ln in self.length]
        self.s = [rng.uniform(0, 1, k) for k in n]
        self.off = [rng.uniform(-0.5, 0.5, k) * self.THICKNESS_MM for k in n]
        self.amp = [rng.standard_normal(k) for k in n]

    def points(self, hinges_now: np.ndarray, o_mv: float, o_tv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Current heart-frame (u, v) and amplitudes of all leaflet scatterers.

        Args:
            hinges_now: (4, 2) current (u, v) of the mitral septal, mitral lateral, tricuspid septal and
                tricuspid lateral hinges.
            o_mv, o_tv: valve opening in [0, 1].
        """
        us, vs, amps = [], [], []
        for k in range(4):
            h, other = hinges_now[k], hinges_now[k ^ 1]
            d = (other - h) / np.hypot(*(other - h))
            apex = np.array([-1.0, 0.0]) - d * (-d[0])  # component of -U perpendicular to the annulus
            apex /= np.hypot(*apex)
            o = o_mv if k < 2 else o_tv
            beta = math.radians(self.CLOSED_DEG + (self.OPEN_DEG[k] - self.CLOSED_DEG) * o)
            direc = math.cos(beta) * d + math.sin(beta) * apex
            perp = np.array([-direc[1], direc[0]])
            if np.dot(perp, apex) > 0:
                perp = -perp  # belly towards the atrium
            s = self.s[k]
            bow = 0.12 * (1.0 - o) * self.length[k] * s * (1 - s) * 4
            pts = h + np.outer(s * self.length[k], direc) + np.outer(bow + self.off[k], perp)
            us.append(pts[:, 0])
            vs.append(pts[:, 1])
            amps.append(self.amp[k])
        return np.concatenate(us), np.concatenate(vs), np.concatenate(amps)
