"""``EchoKDMPipeline``: source frame + source/target keypoints → flow (K2F) → target frame(s) (F2I).

A diffusers ``DiffusionPipeline``: it registers its parts (flow autoencoder, two denoisers, two
schedulers), saves to / loads from a folder with ``model_index.json`` and safetensors weights, and moves
with ``.to(device)``. It works at the models' working resolution (``sample_size``, e.g. 112×112); cropping
a DICOM frame to the sector and resizing is the caller's job (:func:`echokdm.grid.kdm_on_source_grid`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from echokdm.defaults import DEFAULT_STEPS, F2I_WEIGHTS, FLOW_VAE_WEIGHTS, K2F_STEPS, K2F_WEIGHTS
from echokdm.errors import EchoKDMError, InputError
from echokdm.flow import cavity_overlap, confine_to_heart, heart_fade, snap_to_contours, ventricle_side
from echokdm.models.conditioning import batch_keypoint_flow
from echokdm.models.diffusion import sample, sampling_scheduler
from echokdm.models.f2i import compose, f2i_condition
from echokdm.models.flow_ae import decode_flow
from echokdm.models.k2f import k2f_condition
from echokdm.models.loading import load_diffusers_model

#: the cavity check's tolerance: K2F's correction counts as carrying the LV cavity where the keypoints say while its
#: flow's :func:`~echokdm.flow.cavity_overlap` is at most this far below the keypoint spline's. On the working grid
#: (model card, "The cavity check") the shortfall is at most 0.018 on 23 phantom test cases (mean 0.002) and
#: 0.031-0.170 on the real loops' 18 EchoNet-format views (mean 0.097); 0.05 was chosen among 0.02, 0.05 and 0.1 on
#: those views and the two full-resolution real loops (0.02 made the bundled sample worse)
CAVITY_TOLERANCE = 0.05
#: weights of K2F's correction (and F2I's residual) inside the target's heart, tried in turn until the cavity check
#: passes; at 0 the heart moves with the spline and shows the warped source
TRUST_LEVELS = (1.0, 0.75, 0.5, 0.25, 0.0)
#: reach (working pixels) outside the target's heart over which a lowered trust returns to 1
TRUST_REACH = 16.0
#: half-width (working pixels) of the ramp across the target's base line beyond which a lowered trust is 1 again: the
#: atrium keeps K2F's correction (the spline's motion there stretched the ED frame's annulus into the atrium on the
#: bundled sample; ``docs/predict.md``, "The EF check")
ATRIUM_RAMP = 3.0


class FlowOutput(NamedTuple):
    """K2F's output: ``flow`` (B, 2, H, W), the spline ``keypoint_flow`` (B, 2, H, W) and ``trust`` (B, 1, H, W), the
    weight in [0, 1] the learned parts keep (1 where the cavity check passes at once; see
    :meth:`EchoKDMPipeline.generate_flow`)."""

    flow: torch.Tensor
    keypoint_flow: torch.Tensor
    trust: torch.Tensor


@dataclass
class EchoKDMPipelineOutput(BaseOutput):
    """Output of :class:`EchoKDMPipeline`.

    Args:
        frames: (N, H, W) generated frames in [0, 1], one per alpha.
        flows: (N, 2, H, W) the pull flows (source → each frame), pixels, channels (dy, dx).
        keypoint_flow: (2, H, W) the thin-plate-spline flow implied by the keypoints alone.
        warped: (N, H, W) the source warped by each flow (the ``k2f-warp`` ablation).
    """

    frames: np.ndarray | torch.Tensor
    flows: np.ndarray | torch.Tensor
    keypoint_flow: np.ndarray | torch.Tensor
    warped: np.ndarray | torch.Tensor


class EchoKDMPipeline(DiffusionPipeline):
    """Key-point guided diffusion (KDM) for echocardiography frames.

    Args:
        flow_vae: flow autoencoder (K2F's latent space).
        k2f_unet: latent denoiser keypoints → flow.
        f2i_unet: image denoiser flow → frame (residual over the warped source).
        k2f_scheduler: sampler for K2F (any diffusers scheduler with the training noise schedule).
        f2i_scheduler: sampler for F2I.
    """

    model_cpu_offload_seq = "flow_vae->k2f_unet->f2i_unet"

    def __init__(
        self, flow_vae: AutoencoderKL, k2f_unet: UNet2DModel, f2i_unet: UNet2DModel,
        k2f_scheduler: SchedulerMixin, f2i_scheduler: SchedulerMixin,
    ) -> None:
        super().__init__()
        self.register_modules(
            flow_vae=flow_vae, k2f_unet=k2f_unet, f2i_unet=f2i_unet,
            k2f_scheduler=k2f_scheduler, f2i_scheduler=f2i_scheduler,
        )
        #: reach (working pixels) of the motion outside the heart; None (shipped): the flow as K2F gives it
        self.heart_reach: float | None = None
        #: weights of K2F's correction, ``fade(target keypoints (B, K, 2), (H, W)) -> (B, H, W)`` (e.g.
        #: :func:`echokdm.flow.heart_fade`); None (shipped): the correction as K2F gives it
        self.correction_fade: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None = None
        #: the cavity check's tolerance (:data:`CAVITY_TOLERANCE`); None: no check, K2F's flow as it is
        self.cavity_tolerance: float | None = CAVITY_TOLERANCE

    @classmethod
    def from_weights(
        cls, flow_vae: str = FLOW_VAE_WEIGHTS, k2f: str = K2F_WEIGHTS, f2i: str = F2I_WEIGHTS
    ) -> EchoKDMPipeline:
        """Build the pipeline from echokdm weights: shipped names (sha256-checked) or ``.safetensors`` paths.

        The default is the shipped model; nothing is downloaded.
        """
        return cls(
            load_diffusers_model(AutoencoderKL, flow_vae), load_diffusers_model(UNet2DModel, k2f),
            load_diffusers_model(UNet2DModel, f2i), sampling_scheduler(clip_sample=False),
            sampling_scheduler(clip_sample=True),
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs
    ) -> EchoKDMPipeline:
        """Load a pipeline from a local folder; ``None`` (the default) is the shipped model. Nothing is downloaded.

        Args:
            pretrained_model_name_or_path: ``None``; a folder written by :meth:`save_pretrained`
                (``model_index.json`` + safetensors); or a folder of echokdm weights files named like the
                shipped ones (``kdm_flow_vae.safetensors``, ``kdm_k2f.safetensors``, ``kdm_f2i.safetensors``).
            kwargs: passed to diffusers' ``DiffusionPipeline.from_pretrained`` for a saved pipeline folder.

        Raises:
            InputError: the folder does not exist or holds neither layout.
        """
        if pretrained_model_name_or_path is None:
            return cls.from_weights()
        root = Path(pretrained_model_name_or_path)
        if (root / "model_index.json").is_file():
            kwargs = {"local_files_only": True, "use_safetensors": True, **kwargs}
            return super().from_pretrained(root, **kwargs)
        names = (FLOW_VAE_WEIGHTS, K2F_WEIGHTS, F2I_WEIGHTS)
        files = [root / f"{n}.safetensors" for n in names]
        if not root.is_dir() or not all(f.is_file() for f in files):
            raise InputError(f"{root} is neither a saved EchoKDMPipeline (model_index.json) nor a folder with "
                             f"{', '.join(f.name for f in files)}")
        return cls.from_weights(*(str(f) for f in files))

    @property
    def sample_size(self) -> int:
        """Working resolution (pixels per side) of the models."""
        return int(self.f2i_unet.config.sample_size)

    def _inputs(self, source, source_keypoints, target_keypoints) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device, dtype = self.f2i_unet.device, self.f2i_unet.dtype
        src = torch.as_tensor(np.asarray(source, dtype=np.float32) if not torch.is_tensor(source) else source)
        src = src.to(device=device, dtype=dtype).reshape(1, 1, *src.shape[-2:])
        if tuple(src.shape[-2:]) != (self.sample_size, self.sample_size):
            raise EchoKDMError(
                f"source frame must be {self.sample_size}x{self.sample_size}, got {tuple(src.shape[-2:])}"
            )
        kps = [
            torch.as_tensor(np.asarray(k, dtype=np.float32)).reshape(1, -1, 2).to(device)
            for k in (source_keypoints, target_keypoints)
        ]
        if kps[0].shape != kps[1].shape:
            raise EchoKDMError(f"source and target keypoints differ in count: {kps[0].shape[1]} vs {kps[1].shape[1]}")
        return src, kps[0], kps[1]

    @torch.no_grad()
    def generate_flow(
        self, source: torch.Tensor, source_keypoints: torch.Tensor, target_keypoints: torch.Tensor,
        num_inference_steps: int = K2F_STEPS, generator: torch.Generator | None = None, strict: bool = False,
    ) -> FlowOutput:
        """K2F: (B, 1, H, W) sources and (B, K, 2) keypoints → :class:`FlowOutput`.

        The flow is the keypoint (thin-plate-spline) flow plus the decoded correction K2F generates, snapped
        so that the contours land on the target keypoints (:func:`echokdm.flow.snap_to_contours`) and faded
        outside the target's heart over ``heart_reach`` pixels when set (:func:`echokdm.flow.confine_to_heart`);
        ``correction_fade`` weights the decoded correction alone.

        The cavity check: where the flow does not carry the source's LV cavity onto the target's as well as the
        spline does (:func:`echokdm.flow.cavity_overlap`, within ``cavity_tolerance``), K2F is outside what it
        learned (on real loops its correction can undo the keypoint motion); the correction inside the target's
        heart (up to its base line: the atrium keeps it, :data:`ATRIUM_RAMP`) is then weighted down by the first of
        :data:`TRUST_LEVELS` that passes, and that weight is the returned ``trust``, which :meth:`render` gives F2I's
        residual too. ``strict`` checks at tolerance 0 (the flow
        must carry the cavity at least as well as the spline: the EF check's second attempt,
        :mod:`echokdm.predict.ef_check`).
        """
        kp_flow = batch_keypoint_flow(source_keypoints, target_keypoints, tuple(source.shape[-2:])).to(source)
        cond = k2f_condition(source, source_keypoints, target_keypoints, kp_flow)
        latent = sample(self.k2f_unet, self.k2f_scheduler, cond, self.k2f_unet.config.out_channels,
                        num_inference_steps, generator)
        correction = decode_flow(self.flow_vae, latent)
        if self.correction_fade is not None:
            correction = correction * self.correction_fade(target_keypoints, tuple(correction.shape[-2:]))[:, None].to(
                correction
            )

        def flow_with(weight: torch.Tensor | float) -> torch.Tensor:
            flow = snap_to_contours(kp_flow + correction * weight, kp_flow, target_keypoints)
            return flow if self.heart_reach is None else confine_to_heart(flow, target_keypoints, self.heart_reach)

        flow, trust = flow_with(1.0), torch.ones_like(kp_flow[:, :1])
        tolerance = 0.0 if strict else self.cavity_tolerance
        if tolerance is None:
            return FlowOutput(flow, kp_flow, trust)
        needed = cavity_overlap(kp_flow, source_keypoints, target_keypoints) - tolerance
        passed = cavity_overlap(flow, source_keypoints, target_keypoints) >= needed
        if passed.all():
            return FlowOutput(flow, kp_flow, trust)
        shape = tuple(kp_flow.shape[-2:])
        heart = heart_fade(target_keypoints, shape, TRUST_REACH) * ventricle_side(target_keypoints, shape, ATRIUM_RAMP)
        heart = heart[:, None].to(kp_flow)
        for level in TRUST_LEVELS[1:]:
            weight = 1 - (1 - level) * heart
            candidate = flow_with(weight)
            now = cavity_overlap(candidate, source_keypoints, target_keypoints) >= needed
            take = torch.from_numpy(~passed & (now | (level == TRUST_LEVELS[-1]))).to(flow.device)
            flow, trust = torch.where(take[:, None, None, None], candidate, flow), torch.where(
                take[:, None, None, None], weight, trust)
            passed = passed | now
            if passed.all():
                break
        return FlowOutput(flow, kp_flow, trust)

    @torch.no_grad()
    def render(
        self, source: torch.Tensor, flow: torch.Tensor, alphas: Sequence[float] = (1.0,),
        num_inference_steps: int = DEFAULT_STEPS, generator: torch.Generator | None = None,
        trust: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F2I: (1, 1, H, W) source and (1, 2, H, W) flow → a frame for each fraction alpha of the motion.

        Continuous generation: frame i shows the source pulled by ``alphas[i] * flow`` plus a residual that F2I
        renders with denoising strength ``alphas[i]`` (the img2img ``strength`` of diffusers: it runs the last
        ``int(alpha * steps)`` steps from a lightly noised zero residual, so frames near the source cost few
        steps) and that is faded by ``alphas[i]``. The fade keeps the residual continuous in alpha where the
        step count jumps: with strength alone the residual switched on at full size between two frames.
        Alpha 1 samples from pure noise, unfaded. ``trust`` ((1, 1, H, W), from :meth:`generate_flow`) weights the
        residual as well: where K2F failed the cavity check, F2I (which learned from K2F's flows) is outside what it
        learned too, and the frame there is the warped source.

        Returns:
            (frames (N, 1, H, W), flows ``alpha * flow`` (N, 2, H, W), warped sources (N, 1, H, W)).
        """
        flows = torch.cat([a * flow for a in alphas])
        cond, warped = f2i_condition(source.expand(len(flows), -1, -1, -1), flows)
        residual = sample(self.f2i_unet, self.f2i_scheduler, cond, 1, num_inference_steps, generator,
                          shared_noise=True, strength=alphas)
        residual = residual * torch.tensor(alphas, dtype=residual.dtype, device=residual.device).view(-1, 1, 1, 1)
        if trust is not None:
            residual = residual * trust.to(residual)
        return compose(warped, residual), flows, warped

    @torch.no_grad()
    def __call__(
        self,
        source: np.ndarray | torch.Tensor,
        source_keypoints: np.ndarray | torch.Tensor,
        target_keypoints: np.ndarray | torch.Tensor,
        alphas: list[float] | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        k2f_steps: int = K2F_STEPS,
        return_dict: bool = True,
    ) -> EchoKDMPipelineOutput | tuple:
        """Generate the target frame, or a sequence towards it.

        Args:
            source: (H, W) or (1, 1, H, W) source frame in [0, 1] at the working resolution.
            source_keypoints: (K, 2) keypoints (x, y) on the source, pixels of the working grid.
            target_keypoints: (K, 2) the keypoints the generated frame should show.
            alphas: fractions of the motion to render, each in (0, 1]; default ``[1.0]`` (the target only).
                One K2F run serves all of them (continuous generation: the flow is scaled by alpha).
            num_inference_steps: denoising steps of F2I.
            generator: makes the result reproducible.
            output_type: ``"np"`` (float32 numpy arrays) or ``"pt"`` (tensors).
            k2f_steps: denoising steps of K2F.
            return_dict: return an :class:`EchoKDMPipelineOutput` instead of a tuple.

        Returns:
            :class:`EchoKDMPipelineOutput` (or ``(frames, flows, keypoint_flow, warped)``).
        """
        alphas = [1.0] if alphas is None else list(alphas)
        if not alphas or any(not (0.0 < a <= 1.0) for a in alphas):
            raise EchoKDMError(f"alphas must be in (0, 1], got {alphas}")
        src, kps_src, kps_tgt = self._inputs(source, source_keypoints, target_keypoints)
        flow, kp_flow, trust = self.generate_flow(src, kps_src, kps_tgt, k2f_steps, generator)
        frames, flows, warped = self.render(src, flow, alphas, num_inference_steps, generator, trust)
        out = (frames[:, 0], flows, kp_flow[0], warped[:, 0])
        if output_type == "np":
            out = tuple(o.float().cpu().numpy() for o in out)
        return EchoKDMPipelineOutput(*out) if return_dict else out
