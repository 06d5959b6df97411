"""The shared conditional-diffusion pieces of K2F, F2I and k2i: a training loss and a sampler.

Conditioning is by concatenation: the denoiser sees ``cat([x_t, cond], dim=1)``. The scheduler is any
diffusers scheduler (DDPM for training; DDIM, DPM-Solver, ... for sampling); nothing about it is fixed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

#: prediction target shared by all echokdm denoisers: x0 directly suits few-step deterministic sampling
PREDICTION_TYPE = "sample"


def image_unet(sample_size: int, cond_channels: int) -> UNet2DModel:
    """The image-space denoiser of F2I and k2i: 3 levels, no attention, about 0.6 M parameters.

    Args:
        sample_size: working resolution.
        cond_channels: conditioning channels concatenated to the one-channel noisy sample.
    """
    return UNet2DModel(
        sample_size=sample_size, in_channels=1 + cond_channels, out_channels=1,
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
    )


def training_scheduler(clip_sample: bool = True) -> DDPMScheduler:
    """The DDPM noise schedule every echokdm denoiser is trained with."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=PREDICTION_TYPE,
        clip_sample=clip_sample, timestep_spacing="trailing",
    )


def sampling_scheduler(clip_sample: bool = True) -> DDIMScheduler:
    """The default sampler: deterministic DDIM over the training schedule ("trailing" steps)."""
    return DDIMScheduler.from_config(training_scheduler(clip_sample).config)


def diffusion_loss(
    unet: UNet2DModel, scheduler: DDPMScheduler, x0: torch.Tensor, cond: torch.Tensor,
    generator: torch.Generator | None = None, return_prediction: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Denoising loss at uniformly drawn timesteps (MSE against the scheduler's prediction target).

    Args:
        unet: denoiser taking ``x.shape[1] + cond.shape[1]`` channels.
        scheduler: the training scheduler.
        x0: (B, C, H, W) clean samples.
        cond: (B, Cc, H, W) conditioning at the same resolution.
        return_prediction: also return the denoiser's raw output (x0 when the prediction type is "sample").
    """
    b = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), device=x0.device, generator=generator)
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    xt = scheduler.add_noise(x0, noise, t)
    pred = unet(torch.cat([xt, cond], 1), t).sample
    kind = scheduler.config.prediction_type
    target = {"sample": x0, "epsilon": noise}.get(kind)
    if target is None:
        target = scheduler.get_velocity(x0, noise, t)
    loss = F.mse_loss(pred, target)
    return (loss, pred) if return_prediction else loss


@torch.no_grad()
def sample(
    unet: UNet2DModel, scheduler: SchedulerMixin, cond: torch.Tensor, channels: int,
    num_inference_steps: int, generator: torch.Generator | None = None, shared_noise: bool = False,
    strength: Sequence[float] | None = None,
) -> torch.Tensor:
    """Run the reverse process from Gaussian noise, conditioned on ``cond``.

    Args:
        unet: the denoiser.
        scheduler: a diffusers scheduler with ``set_timesteps``, ``add_noise`` and ``step`` (its config must
            match the one the denoiser was trained with).
        cond: (B, Cc, H, W) conditioning.
        channels: channels of the generated sample.
        num_inference_steps: denoising steps.
        generator: makes the initial noise (and stochastic samplers) reproducible.
        shared_noise: start every batch item from the same noise (frames of one sequence stay coherent).
        strength: per batch item, the fraction of the steps it runs, as ``strength`` in diffusers' img2img
            pipelines (SDEdit): an item runs the last ``int(strength * steps)`` steps, starting from a zero
            sample noised to that level, so a small strength stays close to zero and 0 returns zeros.
            Default: 1 for every item (sampling from pure noise).

    Returns:
        (B, channels, H, W) generated samples.
    """
    b, _, h, w = cond.shape
    noise = randn_tensor(
        (1 if shared_noise else b, channels, h, w), generator=generator, device=cond.device, dtype=cond.dtype
    )
    noise = noise.expand(b, -1, -1, -1)
    runs = torch.full((b,), num_inference_steps) if strength is None else torch.tensor(
        [min(int(num_inference_steps * s), num_inference_steps) for s in strength]
    )
    out = torch.zeros_like(noise)
    for run in sorted(set(runs.tolist()) - {0}, reverse=True):  # items of one strength share a reverse process
        items = runs == run
        scheduler.set_timesteps(num_inference_steps, device=cond.device)
        begin = (num_inference_steps - run) * scheduler.order
        timesteps = scheduler.timesteps[begin:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
        x = noise[items] * scheduler.init_noise_sigma if begin == 0 else scheduler.add_noise(
            torch.zeros_like(noise[items]), noise[items], timesteps[:1].repeat(int(items.sum()))
        )
        for t in timesteps:
            model_in = scheduler.scale_model_input(x, t)
            pred = unet(torch.cat([model_in, cond[items]], 1), t).sample
            x = scheduler.step(pred, t, x, generator=generator).prev_sample
        out[items] = x
    return out
