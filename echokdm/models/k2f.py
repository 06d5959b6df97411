"""K2F: keypoints → flow, a latent diffusion model in the flow autoencoder's latent space.

The keypoints alone imply a dense flow: the thin-plate spline through them (the sparse displacement
rendered densely). K2F generates what that spline misses — the latent of ``flow − keypoint flow`` —
conditioned (by concatenation, at latent resolution) on the keypoint flow itself, the source image and
Gaussian heatmaps of the source and target keypoints. The output flow is ``keypoint flow + decoded latent``,
so the autoencoder's error only touches the (small) correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from echokdm.models.conditioning import keypoint_heatmap
from echokdm.models.flow_ae import FLOW_SCALE

#: conditioning channels: keypoint flow (2) + source (1) + source heatmap (1) + target heatmap (1)
K2F_COND_CHANNELS = 5

#: the flow autoencoder's down-sampling factor (latent side = image side / LATENT_FACTOR)
LATENT_FACTOR = 4


def build_k2f_unet(latent_size: int = 28, latent_channels: int = 4) -> UNet2DModel:
    """Latent denoiser (about 1 M parameters) with self-attention at the middle level."""
    return UNet2DModel(
        sample_size=latent_size, in_channels=latent_channels + K2F_COND_CHANNELS, out_channels=latent_channels,
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=16,
    )


def k2f_condition(
    source: torch.Tensor, src_kps: torch.Tensor, tgt_kps: torch.Tensor, kp_flow: torch.Tensor
) -> torch.Tensor:
    """K2F conditioning at latent resolution.

    Args:
        source: (B, 1, H, W) source frames in [0, 1].
        src_kps, tgt_kps: (B, K, 2) keypoints (x, y) in pixels of the (H, W) grid.
        kp_flow: (B, 2, H, W) keypoint (TPS) flow, pixels (:func:`batch_keypoint_flow`).

    Returns:
        (B, 5, H/4, W/4).
    """
    h, w = source.shape[-2:]
    lh, lw = h // LATENT_FACTOR, w // LATENT_FACTOR
    scale = torch.tensor([lw / w, lh / h], device=source.device)
    kp_small = F.adaptive_avg_pool2d(kp_flow.to(source), (lh, lw)) / FLOW_SCALE
    src_small = F.adaptive_avg_pool2d(source, (lh, lw)) * 2 - 1
    heat_src = keypoint_heatmap(src_kps * scale, (lh, lw))
    heat_tgt = keypoint_heatmap(tgt_kps * scale, (lh, lw))
    return torch.cat([kp_small, src_small, heat_src, heat_tgt], 1)
