"""OF-net: unsupervised optical flow between two echo frames (KDM's source of K2F training targets).

A MONAI ``UNet`` maps the concatenated frame pair to a pull displacement field; it is trained without
ground truth by a speckle-robust photometric loss (local normalised cross-correlation between the warped
source and the target) plus a smoothness penalty on the field (MONAI ``DiffusionLoss``).
"""

from __future__ import annotations

import torch
from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
from monai.networks.nets import UNet
from torch import nn

from echokdm.flow import warp


class OFNet(nn.Module):
    """Frame pair → pull DDF (B, 2, H, W) in pixels, channels (dy, dx).

    Args:
        channels: feature channels per UNet level (input side to bottleneck).
        max_displacement: the output is ``max_displacement * tanh(.)`` pixels, bounding the field.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 64), max_displacement: float = 16.0) -> None:
        super().__init__()
        self.max_displacement = max_displacement
        self.net = UNet(
            spatial_dims=2, in_channels=2, out_channels=2, channels=channels,
            strides=(2,) * (len(channels) - 1), num_res_units=1, norm="instance",
        )

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: source, target (B, 1, H, W) in [0, 1]. Returns: (B, 2, H, W) pull DDF source → target."""
        return self.max_displacement * torch.tanh(self.net(torch.cat([source, target], 1)) / self.max_displacement)


class OFNetLoss(nn.Module):
    """Unsupervised loss: LNCC(warp(source, ddf), target) + ``smooth_weight`` · DiffusionLoss(ddf).

    Args:
        kernel_size: LNCC window in pixels (odd).
        smooth_weight: weight of the gradient (diffusion) regulariser.
    """

    def __init__(self, kernel_size: int = 9, smooth_weight: float = 0.05) -> None:
        super().__init__()
        self.lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=2, kernel_size=kernel_size)
        self.smooth = DiffusionLoss()
        self.smooth_weight = smooth_weight

    def forward(self, source: torch.Tensor, target: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        return self.lncc(warp(source, ddf), target) + self.smooth_weight * self.smooth(ddf)
