"""Keypoint encodings that condition K2F and the k2i ablation: Gaussian heatmaps and dense keypoint flows."""

from __future__ import annotations

import numpy as np
import torch

from echokdm.flow import keypoint_flow


def keypoint_heatmap(kps: torch.Tensor, shape: tuple[int, int], sigma: float = 1.0) -> torch.Tensor:
    """Sum of Gaussian blobs at the keypoints, scaled to a peak of about 1.

    Args:
        kps: (B, K, 2) keypoints (x, y) in pixels of a grid of size ``shape``.
        shape: (H, W).
        sigma: blob width in pixels.

    Returns:
        (B, 1, H, W) float32.
    """
    h, w = shape
    yy = torch.arange(h, dtype=torch.float32, device=kps.device).view(1, 1, h, 1)
    xx = torch.arange(w, dtype=torch.float32, device=kps.device).view(1, 1, 1, w)
    x = kps[..., 0].float().view(*kps.shape[:2], 1, 1)
    y = kps[..., 1].float().view(*kps.shape[:2], 1, 1)
    blobs = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return blobs.amax(dim=1, keepdim=True)


def batch_keypoint_flow(src_kps: torch.Tensor, tgt_kps: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Thin-plate-spline pull flows for a batch: (B, K, 2) × 2 → (B, 2, H, W) in pixels."""
    flows = [keypoint_flow(s, t, shape) for s, t in zip(src_kps.cpu().numpy(), tgt_kps.cpu().numpy())]
    return torch.from_numpy(np.stack(flows)).to(src_kps.device)
