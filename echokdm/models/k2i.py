"""k2i: the "no flow" ablation of KDM — keypoints → image directly, one conditional diffusion model.

The denoiser generates the target frame (scaled to [-1, 1]) conditioned on the source frame and
Gaussian heatmaps of the source and target keypoints, with no flow in between. It exists to measure
what the flow bridge of K2F + F2I is worth.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from echokdm.models.conditioning import keypoint_heatmap
from echokdm.models.diffusion import image_unet

#: conditioning channels: source (1) + source heatmap (1) + target heatmap (1)
K2I_COND_CHANNELS = 3


def build_k2i_unet(sample_size: int = 112) -> UNet2DModel:
    """Image-space denoiser of the same size as F2I's."""
    return image_unet(sample_size, K2I_COND_CHANNELS)


def k2i_condition(source: torch.Tensor, src_kps: torch.Tensor, tgt_kps: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) source in [0, 1] and (B, K, 2) keypoints → (B, 3, H, W) conditioning."""
    shape = tuple(source.shape[-2:])
    return torch.cat([source * 2 - 1, keypoint_heatmap(src_kps, shape, 2.0), keypoint_heatmap(tgt_kps, shape, 2.0)], 1)
