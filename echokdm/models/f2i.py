"""F2I: flow → image, a conditional diffusion model that renders the target frame.

The denoiser generates the *residual* between the target frame and the source warped by the flow,
conditioned on the source, the warped source and the flow. Warping carries the speckle and anatomy
exactly where the flow is right; F2I adds what warping cannot (inflow/outflow, intensity change,
disocclusion), so its output is ``clamp(warped + residual, 0, 1)``.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from echokdm.flow import warp
from echokdm.models.diffusion import image_unet
from echokdm.models.flow_ae import FLOW_SCALE

#: conditioning channels: source (1) + warped source (1) + flow (2)
F2I_COND_CHANNELS = 4


def build_f2i_unet(sample_size: int = 112) -> UNet2DModel:
    """Image-space denoiser (a quarter of the 2.5 M-parameter reference UNet)."""
    return image_unet(sample_size, F2I_COND_CHANNELS)


def f2i_condition(source: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the source and build F2I's conditioning.

    Args:
        source: (B, 1, H, W) in [0, 1].
        flow: (B, 2, H, W) pull flow source → target, pixels.

    Returns:
        (cond (B, 4, H, W), warped source (B, 1, H, W) in [0, 1]).
    """
    warped = warp(source, flow)
    return torch.cat([source * 2 - 1, warped * 2 - 1, flow / FLOW_SCALE], 1), warped


def residual_target(target: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """Training target of F2I: target − warped source, in [-1, 1]."""
    return target - warped


def compose(warped: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """F2I output frame from the warped source and the generated residual, in [0, 1]."""
    return (warped + residual).clamp(0, 1)
