"""K2F: keypoints → flow, a latent diffusion model in the flow autoencoder's latent space.

The denoiser generates the latent of the source→target flow, conditioned (by concatenation, at latent
resolution) on: the latent of the thin-plate-spline flow that the keypoints alone imply (the sparse
displacement rendered densely), the source image, and Gaussian heatmaps of source and target keypoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DModel

from echokdm.models.conditioning import batch_keypoint_flow, keypoint_heatmap
from echokdm.models.flow_ae import encode_flow

#: conditioning channels: keypoint-flow latent (4) + source (1) + source heatmap (1) + target heatmap (1)
K2F_COND_CHANNELS = 7


def build_k2f_unet(latent_size: int = 28, latent_channels: int = 4) -> UNet2DModel:
    """Latent denoiser (about 1 M parameters) with self-attention at the middle level."""
    return UNet2DModel(
        sample_size=latent_size, in_channels=latent_channels + K2F_COND_CHANNELS, out_channels=latent_channels,
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=16,
    )


def k2f_condition(
    vae: AutoencoderKL, source: torch.Tensor, src_kps: torch.Tensor, tgt_kps: torch.Tensor,
    kp_flow: torch.Tensor | None = None,
) -> torch.Tensor:
    """K2F conditioning at latent resolution.

    Args:
        vae: the flow autoencoder.
        source: (B, 1, H, W) source frames in [0, 1].
        src_kps, tgt_kps: (B, K, 2) keypoints (x, y) in pixels of the (H, W) grid.
        kp_flow: (B, 2, H, W) precomputed keypoint (TPS) flow; computed when None.

    Returns:
        (B, 7, H/4, W/4).
    """
    h, w = source.shape[-2:]
    if kp_flow is None:
        kp_flow = batch_keypoint_flow(src_kps, tgt_kps, (h, w))
    z_kp = encode_flow(vae, kp_flow.to(source))
    lh, lw = z_kp.shape[-2:]
    scale = torch.tensor([lw / w, lh / h], device=source.device)
    src_small = F.adaptive_avg_pool2d(source, (lh, lw)) * 2 - 1
    heat_src = keypoint_heatmap(src_kps * scale, (lh, lw))
    heat_tgt = keypoint_heatmap(tgt_kps * scale, (lh, lw))
    return torch.cat([z_kp, src_small, heat_src, heat_tgt], 1)
