"""Flow autoencoder: compresses a dense flow (2, H, W) into a 4× smaller latent for K2F.

A diffusers ``AutoencoderKL`` with two input/output channels. Flows are divided by ``FLOW_SCALE`` pixels
before encoding so that typical cardiac motion at the working resolution spans about [-1, 1].
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

#: pixels of displacement that map to 1.0 in the autoencoder's input space
FLOW_SCALE = 8.0


def build_flow_autoencoder(
    sample_size: int = 112, latent_channels: int = 4, cls: type[AutoencoderKL] = AutoencoderKL
) -> AutoencoderKL:
    """A small KL autoencoder for flows: 3 levels (4× down), about 0.25 M parameters."""
    return cls(
        in_channels=2, out_channels=2, latent_channels=latent_channels, sample_size=sample_size,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8,
    )


def encode_flow(
    vae: AutoencoderKL, flow: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flow (B, 2, H, W) in pixels → latent (B, C, H/4, W/4) (the posterior mean unless ``sample``)."""
    dist = vae.encode(flow / FLOW_SCALE).latent_dist
    return dist.sample(generator) if sample else dist.mean


def decode_flow(vae: AutoencoderKL, latent: torch.Tensor) -> torch.Tensor:
    """Latent (B, C, h, w) → flow (B, 2, 4h, 4w) in pixels."""
    return vae.decode(latent).sample * FLOW_SCALE


def flow_autoencoder_loss(
    vae: AutoencoderKL, flow: torch.Tensor, kl_weight: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss: mean end-point error of the reconstruction (pixels) + ``kl_weight`` · KL.

    Returns:
        (loss, end-point error) — the second for logging.
    """
    dist = vae.encode(flow / FLOW_SCALE).latent_dist
    recon = vae.decode(dist.sample()).sample * FLOW_SCALE
    epe = torch.linalg.vector_norm(recon - flow, dim=1).mean()
    return epe + kl_weight * dist.kl().mean(), epe.detach()
