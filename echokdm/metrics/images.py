"""Image scores of a predicted frame against the real one: PSNR and SSIM inside the sector, LV cavity overlap.

Every function takes numpy arrays in the conventions of ``data_specs/conventions.md`` and returns plain floats; a
measurement that cannot be made (an empty LV in the prediction's segmentation) is ``nan``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.metrics.regression import compute_ssim_and_cs
from scipy.ndimage import binary_erosion

#: PSNR of a prediction identical to its target (instead of infinity), dB
PSNR_CAP = 100.0
#: SSIM window (Gaussian, as Wang et al. 2004)
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def image_scores(
    pred: np.ndarray,
    target: np.ndarray,
    pred_labels: np.ndarray,
    target_labels: np.ndarray,
    sector_mask: np.ndarray,
    spacing_mm: Sequence[float] | None,
) -> dict[str, float]:
    """PSNR, SSIM, LV Dice and HD95 of predicted frames against the real ones (each averaged over frames).

    Args:
        pred: (N, H, W) predicted frames in [0, 1].
        target: (N, H, W) real frames in [0, 1].
        pred_labels: (N, H, W) uint8 segmentation of the predicted frames.
        target_labels: (N, H, W) uint8 segmentation of the real frames.
        sector_mask: (H, W) bool.
        spacing_mm: (dy, dx); HD95 is in pixels when None.

    Returns:
        ``{"psnr", "ssim", "dice", "hd95"}``.
    """
    dice, hd95 = lv_overlap(pred_labels, target_labels, spacing_mm)
    return {"psnr": psnr_in_sector(pred, target, sector_mask), "ssim": ssim_in_sector(pred, target, sector_mask),
            "dice": dice, "hd95": hd95}


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


def lv_overlap(
    pred_labels: np.ndarray, target_labels: np.ndarray, spacing_mm: tuple[float, float] | None
) -> tuple[float, float]:
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
