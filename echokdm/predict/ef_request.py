"""A calibrated ``--target-ef`` request: the keypoint EF whose prediction measures the requested EF.

The segmenter reads a deformed ED frame of a real loop as less contracted than its keypoints: the Acuson ED frame
warped exactly onto keypoints of EF 50 % (their thin-plate-spline flow; its own label map warped by that flow has
the keypoints' cavity area) measures 17 %, the KDM prediction 23 %. So the keypoint EF is solved for, by a few
secant steps on the EF measured on the predicted frame (each step one seeded prediction of the target frame:
deterministic), within a plausible range around the request (:data:`MAX_EXTRA` points, at most
:data:`PLAUSIBLE_EF`): a keypoint shape far beyond physiology is never used to force the image. Where the request
needs more, the closest prediction is kept and ``bounded`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from echokdm.defaults import EF_LIMITS, K2F_STEPS
from echokdm.errors import InputError
from echokdm.progress import note

if TYPE_CHECKING:
    from echokdm.models.prior import KeypointPrior

#: the keypoint EF never exceeds this (percent): at 80 % the predicted real cavities were slits (SonoSite, request 60)
PLAUSIBLE_EF = 75.0
#: the keypoint EF stays within this many points of the request
MAX_EXTRA = 20.0
#: stop when the measured EF is this close to the request (points)
TOLERANCE = 1.0
#: predictions made at most to calibrate one request
MAX_RENDERS = 4
#: slopes (measured per keypoint EF point) below this are taken as this, so one step never jumps across the range
MIN_SLOPE = 0.2


@dataclass
class EFCalibration:
    """What a calibrated request asked, used and measured (the report's ``ef.calibration``).

    Attributes:
        requested: the EF asked for (percent).
        keypoints_ef: the EF of the target keypoints used.
        measured: the EF measured on the prediction with those keypoints (None: unmeasurable).
        tried: (keypoint EF, measured EF) of every prediction made, in order.
        bounded: the request needs keypoints outside the plausible range (``low``..``high``): ``measured`` is the
            closest reached there.
        low, high: the plausible keypoint-EF range for this request.
    """

    requested: float
    keypoints_ef: float
    measured: float | None
    tried: list[tuple[float, float | None]] = field(default_factory=list)
    bounded: bool = False
    low: float = EF_LIMITS[0]
    high: float = PLAUSIBLE_EF

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tried"] = [list(t) for t in self.tried]
        return d


def plausible_range(requested: float) -> tuple[float, float]:
    """The keypoint EFs (percent) a request of ``requested`` may use (never below the request's own when it is
    above :data:`PLAUSIBLE_EF`)."""
    return max(EF_LIMITS[0], requested - MAX_EXTRA), max(requested, min(PLAUSIBLE_EF, requested + MAX_EXTRA))


def calibrate_request(
    measure: Callable[[float], float | None], requested: float, tolerance: float = TOLERANCE,
    max_renders: int = MAX_RENDERS,
) -> EFCalibration:
    """Solve ``measure(keypoint EF) = requested`` by secant steps within :func:`plausible_range`.

    Args:
        measure: keypoint EF -> EF measured on the prediction made with keypoints of that EF (None where the
            prediction cannot be made or measured); deterministic.
        requested: the EF asked for (percent).
        tolerance: stop when within this many points.
        max_renders: calls of ``measure`` at most.

    Returns:
        The keypoint EF whose prediction measured closest to ``requested`` (the request itself when none could
        be measured).
    """
    low, high = plausible_range(requested)
    x, tried, bounded = float(np.clip(requested, low, high)), [], False
    for i in range(max_renders):
        m = measure(x)
        tried.append((x, m))
        note(f"predict: target EF {requested:g} %: keypoints {x:.1f} % -> prediction "
             + ("not measurable" if m is None else f"{m:.1f} %") + f" ({i + 1}/{max_renders})")
        if m is None or abs(m - requested) <= tolerance:
            break
        slope = 1.0
        ok = [(a, b) for a, b in tried if b is not None]
        if len(ok) >= 2 and ok[-1][0] != ok[-2][0]:
            slope = (ok[-1][1] - ok[-2][1]) / (ok[-1][0] - ok[-2][0])
            slope = 1.0 if slope <= 0 else max(slope, MIN_SLOPE)
        step = x + (requested - m) / slope
        nxt = float(np.clip(step, low, high))
        bounded = nxt != step
        if any(abs(nxt - a) < 1e-6 for a, _ in tried):
            break
        x = nxt
    measured = [(a, b) for a, b in tried if b is not None]
    if not measured:
        return EFCalibration(requested, requested, None, tried, False, low, high)
    best_x, best_m = min(measured, key=lambda t: abs(t[1] - requested))
    bounded = bounded and abs(best_m - requested) > tolerance
    return EFCalibration(requested, best_x, best_m, tried, bounded, low, high)


class PredictionEFResponse:
    """The EF measured on KDM's prediction as a function of the keypoint EF asked of the prior.

    A call predicts the target frame (:func:`echokdm.grid.kdm_on_source_grid`, alpha 1, the given steps, noise
    seeded by ``seed``: what the final prediction does) from the prior's keypoints at that EF and measures its EF
    as :func:`echokdm.metrics.prediction_ef` does, between ``segment`` of the source and of the predicted frame
    (None where the prior cannot reach the EF or its keypoints leave the image).

    Args:
        pipeline: the KDM pipeline.
        prior: keypoint motion prior.
        segment: (H, W) frame -> (H, W) CAMUS labels.
        source, sector: (H, W) ED frame in [0, 1] and its sector mask.
        source_kps: (40, 2) keypoints (x, y) of the source.
        spacing_mm: (dy, dx) or None.
        steps, seed, k2f_steps: denoising steps of F2I, noise seed and denoising steps of K2F of the prediction.
    """

    def __init__(
        self, pipeline, prior: KeypointPrior, segment: Callable[[np.ndarray], np.ndarray], source: np.ndarray,
        sector: np.ndarray, source_kps: np.ndarray, spacing_mm: Sequence[float] | None, steps: int, seed: int,
        k2f_steps: int = K2F_STEPS,
    ) -> None:
        self.pipeline, self.prior, self.segment = pipeline, prior, segment
        self.source, self.sector, self.source_kps, self.spacing_mm = source, sector, source_kps, spacing_mm
        self.steps, self.seed, self.k2f_steps = steps, seed, k2f_steps
        self.source_labels = segment(source)

    def keypoints(self, ef: float) -> np.ndarray | None:
        """(40, 2) prior keypoints at keypoint EF ``ef``, None when unreachable or outside the image."""
        try:
            kps = np.asarray(self.prior(self.source_kps, target_ef=ef, spacing_mm=self.spacing_mm), dtype=np.float64)
        except InputError:  # not reachable by scaling this heart's motion
            return None
        h, w = self.source.shape
        inside = (kps[:, 0] >= 0) & (kps[:, 0] <= w - 1) & (kps[:, 1] >= 0) & (kps[:, 1] <= h - 1)
        return kps if inside.all() else None

    def __call__(self, ef: float) -> float | None:
        import torch

        from echokdm.grid import kdm_on_source_grid
        from echokdm.metrics import prediction_ef

        kps = self.keypoints(ef)
        if kps is None:
            return None
        out = kdm_on_source_grid(self.pipeline, self.source, self.sector, self.source_kps, kps, [1.0], self.steps,
                                 torch.Generator().manual_seed(self.seed), k2f_steps=self.k2f_steps)
        labels = np.stack([self.source_labels, self.segment(out.frames[-1])])
        return prediction_ef(labels, True, self.spacing_mm, len(self.source_kps)).ef


def calibrated_keypoints(
    pipeline, prior: KeypointPrior, segment: Callable[[np.ndarray], np.ndarray], source: np.ndarray,
    sector: np.ndarray, source_kps: np.ndarray, requested: float, spacing_mm: Sequence[float] | None,
    steps: int, seed: int, k2f_steps: int = K2F_STEPS,
) -> tuple[np.ndarray, EFCalibration]:
    """The prior's ES keypoints for ``requested`` calibrated on KDM's predictions: :func:`calibrate_request` of
    the :class:`PredictionEFResponse` of these arguments.

    Returns:
        The (40, 2) target keypoints and the calibration.
    """
    response = PredictionEFResponse(
        pipeline, prior, segment, source, sector, source_kps, spacing_mm, steps, seed, k2f_steps
    )
    calibration = calibrate_request(response, requested)
    return response.keypoints(calibration.keypoints_ef), calibration
