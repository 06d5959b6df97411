"""Per-case scores of a prediction: image similarity in the sector, LV overlap, keypoints, EF consistency
and, for sequences, temporal smoothness.

Every function takes numpy arrays in the conventions of ``data_specs/conventions.md`` and returns plain
floats; a measurement that cannot be made (an empty LV in the prediction's segmentation) is ``nan``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.metrics.regression import compute_ssim_and_cs
from scipy.ndimage import binary_erosion
from skimage.registration import optical_flow_ilk

from echokdm.errors import EchoKDMError
from echokdm.flow import warp

#: PSNR of a prediction identical to its target (instead of infinity), dB
PSNR_CAP = 100.0
#: SSIM window (Gaussian, as Wang et al. 2004)
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5



@dataclass(frozen=True)
class Metric:
    """How a score reads: direction, unit (``mm`` becomes ``px`` without spacing), decimals, meaning."""

    higher_is_better: bool
    unit: str
    digits: int
    description: str


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


def psnr_in_sector(pred: np.ndarray, target: np.ndarray, sector_mask: np.ndarray) -> float:
    """PSNR (dB, data range 1) over the sector pixels of each frame, averaged over frames; capped at
    :data:`PSNR_CAP`.

    Args:
        pred: (N, H, W) in [0, 1].
        target: (N, H, W) in [0, 1].
        sector_mask: (H, W) bool.
    """
    m = np.broadcast_to(sector_mask, pred.shape)
    diff = (pred.astype(np.float64) - target.astype(np.float64)) * m
    mse = (diff**2).sum(axis=(1, 2)) / m.sum(axis=(1, 2))
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(1.0 / mse)
    return float(np.minimum(psnr, PSNR_CAP).mean())


def ssim_in_sector(pred: np.ndarray, target: np.ndarray, sector_mask: np.ndarray) -> float:
    """SSIM (data range 1, 11x11 Gaussian window) averaged over windows lying wholly inside the sector and
    over frames.

    Args:
        pred: (N, H, W) in [0, 1].
        target: (N, H, W) in [0, 1].
        sector_mask: (H, W) bool.
    """
    ssim_map, _ = compute_ssim_and_cs(
        torch.as_tensor(pred, dtype=torch.float32)[:, None],
        torch.as_tensor(target, dtype=torch.float32)[:, None],
        spatial_dims=2,
        kernel_size=(SSIM_KERNEL, SSIM_KERNEL),
        kernel_sigma=(SSIM_SIGMA, SSIM_SIGMA),
        data_range=1.0,
    )
    r = SSIM_KERNEL // 2
    inside = binary_erosion(sector_mask, np.ones((SSIM_KERNEL, SSIM_KERNEL)), border_value=0)[r:-r, r:-r]
    return float(ssim_map[:, 0].numpy()[:, inside].mean())


def lv_overlap(pred_labels: np.ndarray, target_labels: np.ndarray, spacing_mm: tuple[float, float] | None) -> tuple[float, float]:
    """LV cavity (label 1) Dice and 95% Hausdorff distance, averaged over frames.

    Args:
        pred_labels: (N, H, W) uint8.
        target_labels: (N, H, W) uint8.
        spacing_mm: (dy, dx); distances are in pixels when None.

    Returns:
        (dice, hd95); each is nan when a frame's predicted LV is empty.
    """
    p = torch.as_tensor(pred_labels == 1)[:, None].float()
    t = torch.as_tensor(target_labels == 1)[:, None].float()
    empty = p.flatten(1).sum(1) == 0
    dice = compute_dice(p, t, include_background=True).numpy().ravel()
    hd = np.full(len(p), np.nan)
    if (~empty).any():
        with warnings.catch_warnings():  # MONAI 1.5+ warns about one of its own internal arguments
            warnings.simplefilter("ignore", FutureWarning)
            hd[~empty.numpy()] = compute_hausdorff_distance(
                p[~empty], t[~empty], include_background=True, percentile=95, spacing=list(spacing_mm or (1.0, 1.0))
            ).numpy().ravel()
    hd[empty.numpy()] = np.nan
    return float(dice.mean()), float(hd.mean())


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


def safe_keypoints(labels: np.ndarray, n_keypoints: int) -> np.ndarray | None:
    """Keypoints of a predicted segmentation, or None when it has no usable LV."""
    from echokdm.evaluate.tasks import keypoints_of

    try:
        return keypoints_of(labels, n_keypoints)
    except EchoKDMError:
        return None


def ef_of(ed_keypoints: np.ndarray, es_keypoints: np.ndarray, spacing_mm: tuple[float, float] | None) -> float:
    """EF (percent) of a pair of keypoint sets: Simpson's method of disks on their endocardial contours
    (:func:`echokdm.metrics.ef_from_keypoints`).

    Args:
        ed_keypoints: (K, 2) end-diastolic keypoints (x, y) in pixels.
        es_keypoints: (K, 2) end-systolic keypoints.
        spacing_mm: (dy, dx) or None (square pixels).
    """
    from echokdm.metrics import ef_from_keypoints

    return float(ef_from_keypoints(ed_keypoints, es_keypoints, spacing_mm))
