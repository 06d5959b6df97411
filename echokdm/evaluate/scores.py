"""Per-case scores of the harness: the table of scores (:data:`METRICS`), keypoint distance and, for sequences,
temporal smoothness. Image scores and the EF of a prediction are :mod:`echokdm.metrics`' (``echokdm predict``
reports the same).

Every function takes numpy arrays in the conventions of ``data_specs/conventions.md`` and returns plain
floats; a measurement that cannot be made (an empty LV in the prediction's segmentation) is ``nan``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from skimage.registration import optical_flow_ilk

from echokdm.flow import warp


@dataclass(frozen=True)
class Metric:
    """How a score reads: direction, unit (``mm`` becomes ``px`` without spacing), decimals, meaning."""

    higher_is_better: bool
    unit: str
    digits: int
    description: str

    def unit_for(self, spacing_known: bool) -> str:
        """The unit of this score: ``px`` in place of ``mm`` when the cases have no pixel spacing."""
        return "px" if self.unit == "mm" and not spacing_known else self.unit


#: every score a case can have, in report order
METRICS: dict[str, Metric] = {
    "psnr": Metric(True, "dB", 2, "PSNR inside the sector"),
    "ssim": Metric(True, "", 3, "SSIM inside the sector"),
    "dice": Metric(True, "", 3, "LV cavity Dice: segmentation of the prediction vs true target mask"),
    "hd95": Metric(False, "mm", 2, "95% Hausdorff distance of the LV cavity"),
    "kp_err": Metric(False, "mm", 2, "mean distance of the prediction's keypoints to the target keypoints"),
    "ef_err": Metric(
        False, "EF pts", 2,
        "|EF of the prediction - EF implied by the target keypoints| (EF consistency; in es, ed and sequence the "
        "target keypoints come from the true masks, so this is also the error against the true EF)",
    ),
    "ef_err_target": Metric(False, "EF pts", 2, "|EF of the prediction - requested EF| (target-ef)"),
    "warp_residual": Metric(False, "", 4, "mean |frame t+1 - frame t warped by their optical flow| in the sector"),
    "area_jitter": Metric(False, "%", 2, "mean |area(t) - mean of its neighbours| of the LV area curve / mean area"),
}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: the metrics' small convolutions and warps are many times
    faster so than with threads contending for busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def keypoint_distance(a: np.ndarray, b: np.ndarray, spacing_mm: tuple[float, float] | None) -> float:
    """Mean Euclidean distance between corresponding keypoints (x, y), in mm (pixels when no spacing).

    Args:
        a: (..., K, 2).
        b: same shape.
        spacing_mm: (dy, dx) or None.
    """
    dy, dx = spacing_mm or (1.0, 1.0)
    d = (np.asarray(a) - np.asarray(b)) * np.array([dx, dy])
    return float(np.sqrt((d**2).sum(-1)).mean())


def area_jitter(labels: np.ndarray) -> float:
    """Jitter of the LV cavity area curve (:func:`echokdm.models.seg.area_jitter`), in percent of the mean area.

    Args:
        labels: (T, H, W) label maps of consecutive frames (T >= 3).
    """
    from echokdm.models.seg import area_jitter as jitter

    area = (labels == 1).reshape(len(labels), -1).sum(1).astype(np.float64)
    return 100.0 * jitter(area) if len(area) >= 3 and area.mean() > 0 else float("nan")


def warp_residual(frames: np.ndarray, sector_mask: np.ndarray, radius: int = 7, num_warp: int = 3) -> float:
    """Temporal smoothness of a sequence: mean over consecutive pairs of the absolute residual inside the
    sector after warping frame t onto frame t+1 with their optical flow (iLK, scikit-image).

    Consistent motion of the same content gives a small residual; flicker and re-drawn speckle give a large
    one.

    Args:
        frames: (T, H, W) in [0, 1], T >= 2.
        sector_mask: (H, W) bool.
        radius: iLK window radius in pixels.
        num_warp: iLK warping iterations per pyramid level (3 gives the residual of 10 within 1%, 3x faster).
    """
    res = []
    for a, b in zip(frames[:-1], frames[1:]):
        v, u = optical_flow_ilk(b, a, radius=radius, num_warp=num_warp)
        moved = warp(a, np.stack([v, u])).numpy()
        res.append(np.abs(moved - b)[sector_mask].mean())
    return float(np.mean(res))
