"""Agreement of paired measurements (Bland-Altman) and the EF consistency of predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from echokdm.errors import InputError


@dataclass
class Agreement:
    """Agreement of paired measurements ``a`` vs ``b`` (Bland-Altman).

    Args:
        n: pairs where both are finite.
        mae: mean absolute difference.
        bias: mean of ``a - b``.
        sd: standard deviation of ``a - b`` (0 for one pair).
        loa_low: ``bias - 1.96 sd`` (lower limit of agreement).
        loa_high: ``bias + 1.96 sd``.
    """

    n: int
    mae: float
    bias: float
    sd: float
    loa_low: float
    loa_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def agreement(a: Sequence[float], b: Sequence[float]) -> Agreement:
    """MAE, bias and 95% limits of agreement of ``a`` against ``b`` over pairs where both are finite.

    Raises:
        InputError: sequences of different lengths.
    """
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"agreement needs paired values, got {x.size} and {y.size}")
    d = (x - y)[np.isfinite(x) & np.isfinite(y)]
    if d.size == 0:
        nan = float("nan")
        return Agreement(0, nan, nan, nan, nan, nan)
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return Agreement(int(d.size), float(np.abs(d).mean()), bias, sd, bias - 1.96 * sd, bias + 1.96 * sd)


def ef_consistency(
    ef_keypoints: float, ef_segmentation: float, ef_truth: float | None = None
) -> dict[str, float | None]:
    """EF consistency of one prediction (percentage points).

    Args:
        ef_keypoints: EF implied by the conditioning (target) keypoints.
        ef_segmentation: EF measured on the segmentation of the predicted frames.
        ef_truth: ground-truth EF when known.

    Returns:
        The three EFs and the absolute differences ``seg_vs_keypoints``, ``seg_vs_truth``,
        ``keypoints_vs_truth`` (None without truth).
    """
    truth = None if ef_truth is None else float(ef_truth)
    return {
        "ef_keypoints": float(ef_keypoints),
        "ef_segmentation": float(ef_segmentation),
        "ef_truth": truth,
        "seg_vs_keypoints": abs(float(ef_segmentation) - float(ef_keypoints)),
        "seg_vs_truth": None if truth is None else abs(float(ef_segmentation) - truth),
        "keypoints_vs_truth": None if truth is None else abs(float(ef_keypoints) - truth),
    }


def aggregate_ef_consistency(cases: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Agreement over cases of :func:`ef_consistency` records.

    Returns:
        ``{"seg_vs_keypoints": ..., "seg_vs_truth": ..., "keypoints_vs_truth": ...}``, each an
        :meth:`Agreement.as_dict` (n, mae, bias, sd, loa_low, loa_high); pairs without truth are skipped.
    """

    def col(name: str) -> list[float]:
        return [np.nan if c.get(name) is None else float(c[name]) for c in cases]

    seg, kps, truth = col("ef_segmentation"), col("ef_keypoints"), col("ef_truth")
    return {
        "seg_vs_keypoints": agreement(seg, kps).as_dict(),
        "seg_vs_truth": agreement(seg, truth).as_dict(),
        "keypoints_vs_truth": agreement(kps, truth).as_dict(),
    }
