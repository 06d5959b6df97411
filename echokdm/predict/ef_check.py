"""The EF check: a prediction whose measured EF misses its keypoints' is made again with K2F held to the keypoints.

On real loops K2F's correction of the keypoint spline can move the LV so that the built-in segmenter reads another
EF on the predicted frame than the keypoints imply (on the two real loops' 18 EchoNet-format views 14 points on
average, with the correction inside the 0.05 tolerance of the cavity check). When the first prediction misses by
more than :data:`~echokdm.defaults.EF_CHECK` points, a second one is made with the same noise and the cavity check at
tolerance 0 (``EchoKDMPipeline.generate_flow(strict=True)``: K2F's correction and F2I's residual are weighted down
inside the heart until the flow carries the cavity at least as well as the spline), and the one whose EF is closer
to the keypoints' is kept. For a requested EF (``--target-ef``), whose keypoints are calibrated so that the
prediction measures the request, the miss is the distance to the requested EF. ``echokdm predict`` and the
harness's ``kdm`` predictor both run it; measured in ``docs/predict.md``, "The EF check".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

from echokdm.defaults import EF_CHECK, N_KEYPOINTS

T = TypeVar("T")


@dataclass(frozen=True)
class EFCheck:
    """What the EF check did.

    Args:
        limit: EF points beyond which the second attempt is made.
        first: |EF of the first prediction - EF of the keypoints (a requested EF: the request)| (None: not
            measurable).
        second: the same of the second attempt (None: not made, or not measurable).
        kept: ``"first"`` or ``"second"``.
        unchanged: the first prediction missed, but the strict check keeps its flow whole (K2F's flow carries the
            cavity at least as well as the spline), so a second attempt would make the same frames and was not made.
    """

    limit: float
    first: float | None
    second: float | None
    kept: str
    unchanged: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checked_prediction(
    predict: Callable[[bool], T], ef_error: Callable[[T], float | None], limit: float = EF_CHECK,
    strict_same: Callable[[T], bool] = lambda prediction: False,
) -> tuple[T, EFCheck]:
    """``predict(False)``, and ``predict(True)`` (strict) when the first misses by more than ``limit`` EF points and
    a strict run would not make the same frames.

    Args:
        predict: strict -> a prediction (deterministic: the same noise both times).
        ef_error: a prediction -> |its measured EF - its keypoints' EF|, None where it cannot be measured.
        limit: EF points.
        strict_same: a first prediction -> whether ``predict(True)`` would give the same one
            (:attr:`echokdm.grid.SourceGridOutput.strict_same`).

    Returns:
        The kept prediction (the second only when it is measurably closer) and the check's record.
    """
    first = predict(False)
    miss = ef_error(first)
    if miss is None or miss <= limit:
        return first, EFCheck(limit, miss, None, "first")
    if strict_same(first):
        return first, EFCheck(limit, miss, None, "first", unchanged=True)
    second = predict(True)
    miss2 = ef_error(second)
    if miss2 is not None and miss2 < miss:
        return second, EFCheck(limit, miss, miss2, "second")
    return first, EFCheck(limit, miss, miss2, "first")


def ef_miss(
    labels: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray, source_is_ed: bool,
    spacing_mm: Sequence[float] | None, requested: float | None = None,
) -> float | None:
    """|EF of a prediction - EF of its keypoints| (or - ``requested``, a target EF), as ``report.json`` measures
    them (None where the segmentation of the source or the last predicted frame gives no keypoints).

    Args:
        labels: (1 + N, H, W) CAMUS labels of the source frame, then of each predicted frame.
        source_keypoints, target_keypoints: (K, 2) keypoints of the source and of the last target.
        source_is_ed: the source is the end-diastolic frame.
        spacing_mm: (dy, dx) or None.
        requested: the EF asked for, measured against instead of the keypoints' EF.
    """
    from echokdm.metrics import ef_between, prediction_ef

    measured = prediction_ef(labels, source_is_ed, spacing_mm, N_KEYPOINTS).ef
    if measured is None:
        return None
    if requested is None:
        requested = ef_between(source_keypoints, target_keypoints, source_is_ed, spacing_mm)
    return abs(measured - requested)
