"""Reference-configuration (end-diastolic) geometry of the apical four-chamber phantom.

Everything is described in the *heart frame*, in mm: ``U`` runs along the LV long axis from the LV
endocardial apex (``U = 0``) towards the mitral annulus plane (``U = L``), ``V`` across it, positive
towards the LV lateral wall (screen right in the usual A4C display), negative towards the septum and the
right heart. Each structure is a set of row intervals ``lo(U) <= V <= hi(U)``, so labels and tissue classes
are cheap, exact, vectorised comparisons at any material point. The heart frame sits in the image plane
(mm, ``x`` lateral from the transducer, ``y`` depth) by a rotation (the tilt) and a translation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from echokdm.errors import InputError
from echokdm.phantom.params import PhantomParams

#: fine-grained tissue classes (echogenicity is assigned per class); LABEL_OF maps them to label values.
EXTRA, LV_BLOOD, LV_MYO, LA_BLOOD, RV_BLOOD, RA_BLOOD, HEART_WALL, PERICARDIUM, PERI_SPACE = range(9)
LABEL_OF = np.array([0, 1, 2, 3, 4, 5, 6, 6, 6], np.uint8)
BLOOD_CLASSES = (LV_BLOOD, LA_BLOOD, RV_BLOOD, RA_BLOOD)
#: classes painted in this order (later wins) by their row intervals
PAINT_ORDER = np.array([PERICARDIUM, PERI_SPACE, HEART_WALL, LV_MYO, RV_BLOOD, RA_BLOOD, LA_BLOOD, LV_BLOOD])
ROW_STEP_MM = 0.05

PERI_GAP_MM = 1.5  # pericardial space outside the epicardium
PERI_MM = 2.5  # thickness of the bright pericardial layer
ATRIAL_WALL_MM = 2.5
IAS_MM = 4.0  # interatrial septum away from the crux


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """C1 step from 0 (x <= 0) to 1 (x >= 1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def cap_profile(U: np.ndarray, top: float, eq: float, base: float, w_max: float, w_base: float) -> np.ndarray:
    """Half-width of a bullet shape: elliptic cap from ``top`` (width 0) to ``eq`` (``w_max``), then a
    cosine taper to ``w_base`` at ``base``; NaN above ``top``."""
    t = (eq - U) / (eq - top)
    cap = w_max * np.sqrt(np.clip(1.0 - t * t, 0.0, None))
    s = np.clip((U - eq) / (base - eq), 0.0, 1.0)
    taper = w_base + (w_max - w_base) * 0.5 * (1.0 + np.cos(np.pi * s))
    return np.where(U < top, np.nan, np.where(U < eq, cap, taper))


class Ellipse(NamedTuple):
    """An ellipse with its long axis along U: centre (uc, vc), semi-axes a (along U) and r (along V)."""

    uc: float
    vc: float
    a: float
    r: float

    def half_width(self, U: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Half-width at rows ``U`` of the ellipse grown by ``grow`` mm; NaN outside it."""
        t = (U - self.uc) / (self.a + grow)
        return np.where(np.abs(t) <= 1.0, (self.r + grow) * np.sqrt(np.clip(1.0 - t * t, 0.0, None)), np.nan)


def _atrium(top: float, v_lo: float, v_hi: float, length: float, width: float) -> Ellipse:
    """An atrium hanging below an annulus ``[v_lo, v_hi]`` at row ``top``: its ellipse passes exactly
    through both hinge points and reaches ``top + length``."""
    wa = (v_hi - v_lo) / 2.0
    r = max(width / 2.0, 1.08 * wa)
    a = length / (1.0 + math.sqrt(1.0 - (wa / r) ** 2))
    return Ellipse(top + length - a, (v_hi + v_lo) / 2.0, a, r)


class Anatomy:
    """The end-diastolic four-chamber geometry of one subject, in the heart frame (mm).

    Args:
        p: the loop parameters (anatomy and placement fields are used).
    """

    def __init__(self, p: PhantomParams) -> None:
        self.p = p
        L = self.L = float(p.lv_length_mm)
        width = p.sphericity * L
        self.ws_max, self.wl_max = p.septal_share * width, (1.0 - p.septal_share) * width
        self.ws_a, self.wl_a = p.annulus_ratio * self.ws_max, p.annulus_ratio * self.wl_max
        self.u_eq = (0.62 - 0.2 * (p.sphericity - 0.45)) * L
        self.t_sep, self.t_lat, self.t_ap, self.t_rv = p.septum_mm, p.lateral_wall_mm, p.apex_wall_mm, p.rv_wall_mm
        # right ventricle: apex lower than the LV's, tricuspid annulus more apical than the mitral one
        self.u_rva = p.rv_apex_frac * L
        self.l_tv = L - p.tv_offset_mm
        self.u_eq_rv = self.l_tv - 0.25 * (self.l_tv - self.u_rva)
        self.w_rv, self.w_tv = p.rv_width_mm, 0.85 * p.rv_width_mm
        # atria hang below the annuli
        self.la = _atrium(L, -self.ws_a, self.wl_a, p.la_length_mm, p.la_width_mm)
        v_sr_tv = float(self.septum_right(np.array(self.l_tv)))
        self.ra = _atrium(self.l_tv, v_sr_tv - self.w_tv, v_sr_tv, p.ra_length_mm, p.ra_width_mm)
        # placement: the LV endocardial apex sits at (x_a, y_a) in image mm, long axis tilted by tilt_deg
        self.alpha = math.radians(p.tilt_deg)
        self.x_a = float(p.apex_x_mm)
        self.y_a = float(p.apex_depth_mm) + self.t_ap * math.cos(self.alpha)
        self._table: np.ndarray | None = None  # class intervals per row, built on first use

    # ---- frames -------------------------------------------------------------------------------------
    def to_image(self, U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heart frame (U, V) -> image plane (x lateral, y depth), mm."""
        sa, ca = math.sin(self.alpha), math.cos(self.alpha)
        return self.x_a + U * sa + V * ca, self.y_a + U * ca - V * sa

    def to_heart(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image plane (x, y) mm -> heart frame (U, V)."""
        sa, ca = math.sin(self.alpha), math.cos(self.alpha)
        dx, dy = x - self.x_a, y - self.y_a
        return dx * sa + dy * ca, dx * ca - dy * sa

    # ---- row profiles (NaN where the structure has no row) ----------------------------------------
    def lv_endo(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Septal and lateral half-widths of the LV cavity (rows 0..L)."""
        U = np.asarray(U, dtype=np.float64)
        inside = U <= self.L
        ws = cap_profile(U, 0.0, self.u_eq, self.L, self.ws_max, self.ws_a)
        wl = cap_profile(U, 0.0, self.u_eq, self.L, self.wl_max, self.wl_a)
        return np.where(inside, ws, np.nan), np.where(inside, wl, np.nan)

    def lv_epi(self, U: np.ndarray, grow: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Septal and lateral half-widths of the LV epicardium grown by ``grow`` (rows -t_ap-grow..L)."""
        U = np.asarray(U, dtype=np.float64)
        top = -self.t_ap - grow
        ws = cap_profile(U, top, self.u_eq, self.L, self.ws_max + self.t_sep + grow, self.ws_a + self.t_sep + grow)
        wl = cap_profile(U, top, self.u_eq, self.L, self.wl_max + self.t_lat + grow, self.wl_a + self.t_lat + grow)
        inside = U <= self.L
        return np.where(inside, ws, np.nan), np.where(inside, wl, np.nan)

    def septum_right(self, U: np.ndarray) -> np.ndarray:
        """V of the right-heart side of the septum: LV epicardium above the mitral plane, then the
        interatrial septum (thinning from the crux), defined on every row from the LV apex down."""
        U = np.asarray(U, dtype=np.float64)
        ws_e, _ = self.lv_epi(np.minimum(U, self.L))
        hw = self.la.half_width(np.maximum(U, self.L))
        t_ias = IAS_MM + (self.t_sep - IAS_MM) * (1.0 - smoothstep((U - self.L) / 12.0))
        atrial = self.la.vc - np.nan_to_num(hw, nan=0.0) - t_ias
        return np.where(U <= self.L, -ws_e, np.where(np.isnan(hw), np.nan, atrial))

    def rv(self, U: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Width of the RV cavity (``grow=0``) or of the RV including its free wall (``grow=t_rv``)."""
        U = np.asarray(U, dtype=np.float64)
        w = cap_profile(U, self.u_rva - grow, self.u_eq_rv, self.l_tv, self.w_rv + grow, self.w_tv + grow)
        return np.where(U <= self.l_tv, w, np.nan)

    # ---- classes and labels --------------------------------------------------------------------------
    def heart_interval(self, U: np.ndarray, grow: float) -> tuple[np.ndarray, np.ndarray]:
        """Row interval of the whole heart (all chambers with their walls) grown by ``grow``; NaN rows
        lie outside it."""
        U = np.asarray(U, dtype=np.float64)
        ws_e, wl_e = self.lv_epi(U, grow)
        v_sr = self.septum_right(U)
        rv_o = v_sr - self.rv(U, self.t_rv + grow)
        ra_hw = np.where(U >= self.l_tv, self.ra.half_width(U, ATRIAL_WALL_MM + grow), np.nan)
        la_hw = np.where(U >= self.L, self.la.half_width(U, ATRIAL_WALL_MM + grow), np.nan)
        lo = np.fmin(np.fmin(-ws_e, rv_o), np.fmin(self.ra.vc - ra_hw, self.la.vc - la_hw))
        hi = np.fmax(np.fmax(wl_e, self.la.vc + la_hw), self.ra.vc + ra_hw)
        return lo, hi

    def class_intervals(self, U: np.ndarray) -> np.ndarray:
        """(N, 8, 2) row intervals [lo, hi] of the classes in PAINT_ORDER at rows ``U`` (empty: lo > hi)."""
        U = np.asarray(U, dtype=np.float64)
        ivs = [self.heart_interval(U, PERI_GAP_MM + PERI_MM), self.heart_interval(U, PERI_GAP_MM),
               self.heart_interval(U, 0.0)]
        ws_e, wl_e = self.lv_epi(U)
        ivs.append((-ws_e, wl_e))
        v_sr = self.septum_right(U)
        ivs.append((v_sr - self.rv(U), v_sr))
        ra_hw = np.where(U >= self.l_tv, self.ra.half_width(U), np.nan)
        ivs.append((self.ra.vc - ra_hw, np.fmin(self.ra.vc + ra_hw, v_sr)))
        la_hw = np.where(U >= self.L, self.la.half_width(U), np.nan)
        ivs.append((self.la.vc - la_hw, self.la.vc + la_hw))
        ws, wl = self.lv_endo(U)
        ivs.append((np.where(U >= 0, -ws, np.nan), wl))
        out = np.stack([np.stack(np.broadcast_arrays(lo, hi), -1) for lo, hi in ivs], -2)
        empty = np.isnan(out).any(-1)
        out[empty] = (np.inf, -np.inf)
        return out

    def _build_table(self) -> None:
        """Tabulate :meth:`class_intervals` every ROW_STEP_MM over all rows the heart occupies."""
        u0 = -self.t_ap - PERI_GAP_MM - PERI_MM - 2.0
        u1 = max(self.la.uc + self.la.a, self.ra.uc + self.ra.a) + ATRIAL_WALL_MM + PERI_GAP_MM + PERI_MM + 2.0
        self._u0 = u0
        self._table = self.class_intervals(np.arange(u0, u1 + ROW_STEP_MM, ROW_STEP_MM))

    def tissue_class(self, U: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Fine tissue class (EXTRA ... PERI_SPACE) at material points; same shape as ``U``.

        The class boundaries are tabulated every ROW_STEP_MM along U (the phantom's anatomy *is* this
        table, so reference and deformed label maps agree exactly)."""
        U = np.asarray(U, dtype=np.float64)
        V = np.asarray(V, dtype=np.float64)
        if self._table is None:
            self._build_table()
        f = np.rint((U.ravel() - self._u0) / ROW_STEP_MM)
        n = self._table.shape[0]
        valid = (f >= 0) & (f < n)
        iv = self._table[np.clip(f, 0, n - 1).astype(np.intp)]
        v = V.ravel()[:, None]
        inside = (v >= iv[..., 0]) & (v <= iv[..., 1]) & valid[:, None]
        last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
        cls = np.where(inside.any(axis=1), PAINT_ORDER[last], EXTRA).astype(np.uint8)
        return cls.reshape(U.shape)

    # ---- landmarks -----------------------------------------------------------------------------------
    def mitral_hinges(self) -> np.ndarray:
        """(2, 2) material (U, V) of the septal and lateral mitral hinge points."""
        return np.array([[self.L, -self.ws_a], [self.L, self.wl_a]])

    def tricuspid_hinges(self) -> np.ndarray:
        """(2, 2) material (U, V) of the septal and lateral tricuspid hinge points."""
        v = float(self.septum_right(np.array(self.l_tv)))
        return np.array([[self.l_tv, v], [self.l_tv, v - self.w_tv]])

    def lv_contour(self, n: int = 400) -> np.ndarray:
        """(n, 2) closed material (U, V) polygon of the LV cavity: septal hinge, apex, lateral hinge."""
        s = np.linspace(0.0, 1.0, n // 2)
        U = self.L * (1.0 - np.cos(0.5 * np.pi * s))  # dense near the apex
        ws, wl = self.lv_endo(U)
        sept = np.stack([U, -ws], 1)[::-1]
        lat = np.stack([U, wl], 1)
        return np.concatenate([sept, lat[1:]], 0)

    def extent(self) -> dict[str, float]:
        """Where the reference heart reaches, seen from the transducer: ``depth_heart`` (deepest point of
        the pericardium, mm), ``depth_lv_la`` (deepest point of the LV and LA cavities), ``angle_epi`` and
        ``angle_cavity`` (largest half-angle in degrees of the LV epicardium / LV cavity)."""
        U = np.linspace(-self.t_ap - 10, self.L + max(self.p.la_length_mm, self.p.ra_length_mm) + 15, 800)

        def deepest(lo, hi):
            ok = ~np.isnan(lo) & ~np.isnan(hi) & (lo <= hi)
            return float(max(self.to_image(U[ok], lo[ok])[1].max(), self.to_image(U[ok], hi[ok])[1].max()))

        def widest(lo, hi):
            ok = ~np.isnan(lo) & ~np.isnan(hi)
            angles = [np.degrees(np.arctan2(*self.to_image(U[ok], v[ok]))) for v in (lo, hi)]
            return float(max(np.abs(a).max() for a in angles))

        iv = self.class_intervals(U)
        la = iv[:, list(PAINT_ORDER).index(LA_BLOOD)]
        la_ok = np.isfinite(la[:, 0])
        ws, wl = self.lv_endo(U)
        ws_e, wl_e = self.lv_epi(U)
        lo, hi = self.heart_interval(U, PERI_GAP_MM + PERI_MM)
        return {
            "depth_heart": deepest(lo, hi),
            "depth_lv_la": max(
                deepest(-ws, wl), deepest(np.where(la_ok, la[:, 0], np.nan), np.where(la_ok, la[:, 1], np.nan))
            ),
            "angle_epi": widest(-ws_e, wl_e),
            "angle_cavity": widest(-ws, wl),
        }

    def check_fits(self) -> None:
        """Raise :class:`InputError` unless the LV and LA cavities lie inside the sector (the walls near
        the apex and the right heart may be cut by its edges, as in real A4C views)."""
        ext = self.extent()
        p = self.p
        if ext["depth_lv_la"] + 3 > p.depth_mm:
            raise InputError(
                f"depth {p.depth_mm:g} mm is too shallow for this heart: its left atrium reaches "
                f"{ext['depth_lv_la']:.0f} mm; use a depth of at least {math.ceil(ext['depth_lv_la'] + 3)} mm"
            )
        if ext["angle_cavity"] + 2 > p.sector_deg / 2:
            raise InputError(
                f"sector angle {p.sector_deg:g} deg is too narrow for this heart: the LV cavity spans "
                f"+-{ext['angle_cavity']:.0f} deg; use at least {math.ceil(2 * ext['angle_cavity'] + 4)} deg"
            )
