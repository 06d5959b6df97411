"""Progressive distillation of F2I (``echokdm train f2i-distil``; Salimans & Ho, arXiv 2202.00512).

The student starts as a copy of the frozen teacher (``train.init_weights``, by default ``distil.teacher``) and
learns to take in one DDIM step what the teacher takes in ``teacher_steps / student_steps`` DDIM steps, on the
step windows of the student's sampler (DDIM, "trailing" timesteps, as :func:`~echokdm.models.diffusion.sample`
runs it). Both predict x0 (the shared prediction type), so the student's target is the x0 for which one DDIM step
from ``z_t`` lands where the teacher's steps land (the paper's Algorithm 2), weighted by the truncated SNR
``max(alpha^2 / sigma^2, 1)``. Halving 10 -> 5 is one round of the paper; the task also distils directly (10 -> 2,
10 -> 1) when ``student_steps`` divides ``teacher_steps``. The data are F2I's (``data``, ``data.sources``).

Validation compares, from the same noise, the student at ``student_steps`` and the teacher at ``student_steps``
with the teacher at ``teacher_steps`` (``match``, ``match_teacher``: RMS difference of the rendered frames in the
sector), and scores the student's PSNR in the sector; the best checkpoint is the lowest ``match``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from echokdm.config import option
from echokdm.defaults import DEFAULT_STEPS, F2I_WEIGHTS
from echokdm.errors import InputError
from echokdm.models.diffusion import sample, sampling_scheduler
from echokdm.models.f2i import compose, f2i_condition, residual_target
from echokdm.models.loading import load_diffusers_model
from echokdm.train.kdm import F2ITask, PairDataConfig, _psnr_in, random_crop
from echokdm.train.task import RunConfig


@dataclass
class DistilConfig:
    """What is distilled into what (the ``distil:`` section)."""

    teacher: str = option(F2I_WEIGHTS, "teacher F2I weights (shipped name or .safetensors), frozen")
    teacher_steps: int = option(DEFAULT_STEPS, "DDIM steps of the teacher's sampler", 2, 1000)
    student_steps: int = option(5, "DDIM steps of the student; divides teacher_steps", 1, 999)


@dataclass
class F2IDistilRunConfig(RunConfig):
    data: PairDataConfig = option(PairDataConfig, "F2I's frame pairs and flows")
    distil: DistilConfig = option(DistilConfig, "teacher and step counts")


def ddim_step(x0: torch.Tensor, z: torch.Tensor, alpha_t: torch.Tensor, alpha_prev: torch.Tensor,
              clip: bool) -> torch.Tensor:
    """One deterministic DDIM step (eta 0) of an x0 prediction, per batch item, as diffusers' ``DDIMScheduler.step``
    takes it (noise from the unclipped x0, then x0 clipped to [-1, 1] when ``clip``).

    Args:
        x0: (B, C, H, W) predicted clean sample.
        z: (B, C, H, W) noisy sample at t.
        alpha_t, alpha_prev: (B,) cumulative alphas at t and at the step's end (1 past the last timestep).
    """
    a, ap = alpha_t.view(-1, 1, 1, 1), alpha_prev.view(-1, 1, 1, 1)
    eps = (z - a.sqrt() * x0) / (1 - a).sqrt()
    if clip:
        x0 = x0.clamp(-1, 1)
    return ap.sqrt() * x0 + (1 - ap).sqrt() * eps


class F2IDistilTask(F2ITask):
    """The student F2I of progressive distillation; validated against the teacher's samples."""

    config_class = F2IDistilRunConfig
    select_metric = "match"
    select_mode = "min"

    def __init__(self, cfg: F2IDistilRunConfig) -> None:
        super().__init__(cfg)
        d = cfg.distil
        cfg.train.init_weights = cfg.train.init_weights or d.teacher
        n = self.scheduler.config.num_train_timesteps
        sched = sampling_scheduler(True)
        sched.set_timesteps(d.student_steps)
        student_t = sched.timesteps.long()
        k = d.teacher_steps // d.student_steps
        # the teacher's DDIM steps from each student timestep: t, t - n // teacher_steps, ... (k steps)
        teacher_t = student_t[:, None] - torch.arange(k) * (n // d.teacher_steps)
        sched.set_timesteps(d.teacher_steps)
        if d.teacher_steps % d.student_steps or not torch.isin(teacher_t, sched.timesteps).all() or not torch.equal(
            teacher_t[:, -1] - n // d.teacher_steps, student_t - n // d.student_steps
        ):
            raise InputError(f"distil.student_steps {d.student_steps}: its DDIM windows are not made of the teacher's "
                             f"{d.teacher_steps} steps; use a divisor of teacher_steps such as {d.teacher_steps // 2}")
        #: (student windows, k + 1) timesteps the teacher passes in each window, the window's end last (-1: x0)
        self.windows = torch.cat([teacher_t, student_t[:, None] - n // d.student_steps], 1)
        #: cumulative alphas by timestep; index -1 (past the last step) is 1, as DDIM's ``set_alpha_to_one``
        self.alphas = torch.cat([self.scheduler.alphas_cumprod, torch.ones(1)])
        self._teacher: UNet2DModel | None = None

    def teacher(self, device: torch.device) -> UNet2DModel:
        """The frozen teacher (loaded once) on ``device``."""
        if self._teacher is None:
            self._teacher = load_diffusers_model(UNet2DModel, self.cfg.distil.teacher).eval().requires_grad_(False)
        return self._teacher.to(device)

    @torch.no_grad()
    def target(self, z: torch.Tensor, cond: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """The x0 whose one DDIM step from ``z`` (at each item's window start) lands where the teacher's steps
        over the window land."""
        path = self.windows[window].to(z.device)
        alphas = self.alphas.to(z.device)
        x = z
        for i in range(path.shape[1] - 1):
            x0 = self.teacher(z.device)(torch.cat([x, cond], 1), path[:, i]).sample
            x = ddim_step(x0, x, alphas[path[:, i]], alphas[path[:, i + 1]], clip=True)
        a, ap = (alphas[path[:, j]].view(-1, 1, 1, 1) for j in (0, -1))
        ratio = ((1 - ap) / (1 - a)).sqrt()
        return (x - ratio * z) / (ap.sqrt() - ratio * a.sqrt())

    def training_step(self, model, batch, device):
        target = batch["target"].to(device)
        cond, warped = f2i_condition(batch["source"].to(device), self._flow(batch, device))
        x0, cond = random_crop(self.cfg.data.crop, residual_target(target, warped), cond)
        window = torch.randint(0, len(self.windows), (x0.shape[0],))
        t = self.windows[window, 0].to(device)
        z = self.scheduler.add_noise(x0, randn_tensor(x0.shape, device=device, dtype=x0.dtype), t)
        goal = self.target(z, cond, window)
        a = self.alphas.to(device)[t]
        weight = (a / (1 - a)).clamp_min(1.0).view(-1, 1, 1, 1)  # truncated SNR weighting
        return (weight * (model(torch.cat([z, cond], 1), t).sample - goal) ** 2).mean()

    def validation_step(self, model, batch, device):
        d = self.cfg.distil
        cond, warped = f2i_condition(batch["source"].to(device), self._flow(batch, device))
        tgt, sector = batch["target"].to(device), batch["sector"].to(device)

        def frame(unet, steps):
            res = sample(unet, sampling_scheduler(True), cond, 1, steps, torch.Generator(device).manual_seed(0))
            return compose(warped, res)

        teacher, student = frame(self.teacher(device), d.teacher_steps), frame(model, d.student_steps)
        return {"match": _rms_in(student, teacher, sector),
                "match_teacher": _rms_in(frame(self.teacher(device), d.student_steps), teacher, sector),
                "psnr": _psnr_in(student, tgt, sector), "psnr_teacher": _psnr_in(teacher, tgt, sector)}


def _rms_in(a: torch.Tensor, b: torch.Tensor, sector: torch.Tensor) -> torch.Tensor:
    m = sector[:, None]
    return (((a - b) ** 2 * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)).sqrt()


__all__ = ["DistilConfig", "F2IDistilRunConfig", "F2IDistilTask", "ddim_step"]
