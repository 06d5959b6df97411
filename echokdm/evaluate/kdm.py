"""The KDM model and its ablations as harness predictors: ``kdm``, ``kdm-adapt[:SECONDS]``, ``kdm-heart[:PX]``,
``kdm-local[:PX]``, ``k2f-warp`` and ``k2i``.

Each runs on the models' square working grid around the sector and is carried back to the sample's grid by
residual transfer (:func:`echokdm.grid.on_source_grid`, the round trip ``echokdm predict`` makes), so the three
are compared exactly as users would run them.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from diffusers import UNet2DModel

from echokdm.defaults import DEFAULT_STEPS, EF_CHECK, K2I_WEIGHTS
from echokdm.device import autocast, channels_last
from echokdm.errors import InputError
from echokdm.evaluate.predictors import Predictor
from echokdm.evaluate.tasks import Sample, walled_keypoints
from echokdm.flow import heart_fade, warp
from echokdm.grid import SourceGridOutput, kdm_on_source_grid, on_source_grid
from echokdm.labels import camus_labels
from echokdm.models.diffusion import sample as diffusion_sample
from echokdm.models.diffusion import sampling_scheduler
from echokdm.models.k2i import k2i_condition
from echokdm.pipeline import CAVITY_TOLERANCE
from echokdm.predict.ef_check import checked_prediction, ef_miss


class KDMModel(Predictor):
    """KDM: K2F flow from the keypoints, F2I frame from the flow (the shipped pipeline).

    A ``sequence`` sample is continuous generation: one K2F run to the last target, its flow scaled by
    alpha for the others (:func:`echokdm.grid.motion_fractions`).

    Args:
        steps: denoising steps of F2I (K2F runs :data:`~echokdm.defaults.K2F_STEPS`).
        weights: the pipeline's weights (default: shipped), see :class:`echokdm.predict.PredictWeights`.
    """

    kind = "model"
    warp_only = False
    #: EF points beyond which a prediction is made again with K2F held to the keypoints (the EF check of ``echokdm
    #: predict``); None: no check (the ablations, which isolate one change each)
    ef_check: float | None = EF_CHECK

    def __init__(self, steps: int = DEFAULT_STEPS, weights=None) -> None:
        from echokdm.pipeline import EchoKDMPipeline
        from echokdm.predict import PredictWeights

        self.steps = steps
        w = weights or PredictWeights()
        self.pipe = EchoKDMPipeline.from_weights(w.flow_vae, w.k2f, w.f2i)
        self._segmenter = None  # built-in segmenter, built for target-ef samples (calibrated requests)

    def to(self, device: torch.device) -> KDMModel:
        self.pipe.to(device)
        for unet in (self.pipe.k2f_unet, self.pipe.f2i_unet):
            channels_last(unet, device, inference=True)
        return self

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        source_kps, target_kps = self.keypoints(sample, generator)
        return self.frames(self.pipe, sample, source_kps, target_kps, generator)

    def frames(self, pipe, sample: Sample, source_kps: np.ndarray, target_kps: np.ndarray,
               generator: torch.Generator | None) -> np.ndarray:
        """``pipe``'s frames for ``sample`` on its grid, through the EF check as ``echokdm predict`` runs it
        (:mod:`echokdm.predict.ef_check`, the built-in segmenter measuring; a requested EF is measured against),
        unless :attr:`ef_check` is None. Both attempts draw the same noise."""
        seed = generator.initial_seed() if generator is not None else 0

        def predict(strict: bool) -> SourceGridOutput:
            with autocast(pipe.f2i_unet.device):
                return kdm_on_source_grid(
                    pipe, sample.source, sample.sector_mask, source_kps, target_kps,
                    num_inference_steps=self.steps, generator=torch.Generator().manual_seed(seed),
                    warp_only=self.warp_only, strict=strict,
                )

        if self.ef_check is None:
            return predict(False).frames
        source_labels = self.segment(sample, sample.source)

        def miss(out: SourceGridOutput) -> float | None:
            labels = np.stack([source_labels, *(self.segment(sample, f) for f in out.frames)])
            return ef_miss(labels, source_kps, np.asarray(target_kps)[-1], sample.source_is_ed, sample.spacing_mm,
                           sample.target_ef)

        return checked_prediction(predict, miss, self.ef_check, lambda out: out.strict_same)[0].frames

    def segment(self, sample: Sample, frame: np.ndarray) -> np.ndarray:
        """(H, W) CAMUS labels of one frame of ``sample`` by the built-in segmenter with the shipped weights (as
        ``echokdm predict`` segments its predictions)."""
        from echokdm.segmenter import BuiltinSegmenter

        if self._segmenter is None:
            self._segmenter = BuiltinSegmenter(device=str(self.pipe.f2i_unet.device))
        seg = self._segmenter(frame[None], sector_mask=sample.sector_mask, spacing_mm=sample.spacing_mm)
        return camus_labels(seg)[0]

    def keypoints(self, sample: Sample, generator: torch.Generator | None, pipe=None) -> tuple[np.ndarray, np.ndarray]:
        """(source keypoints, target keypoint sets) KDM is conditioned on: of 20 endocardial keypoints
        (``--keypoints 20``) the 40 with the source's wall and the targets' moved along
        (:func:`echokdm.evaluate.tasks.walled_keypoints`: on the real loops' EchoNet-format views KDM - copy SSIM
        +0.010 -> +0.024; docs/evaluation.md, "KDM at 20 keypoints"); a requested EF (target-ef): :meth:`targets`."""
        if sample.target_ef is not None:
            return sample.source_keypoints, self.targets(sample, generator, pipe)
        return walled_keypoints(sample)

    def targets(self, sample: Sample, generator: torch.Generator | None, pipe=None) -> np.ndarray:
        """The sample's target keypoints; for a requested EF (target-ef), the prior's keypoints calibrated as
        ``echokdm predict --target-ef`` does (:func:`echokdm.predict.ef_request.calibrated_keypoints`, with the
        built-in segmenter and this predictor's steps and noise; ``pipe``: the pipeline, default this one's)."""
        if sample.target_ef is None or sample.prior is None or self.warp_only:
            return sample.target_keypoints
        from echokdm.predict.ef_request import calibrated_keypoints

        seed = generator.initial_seed() if generator is not None else 0
        kps, _ = calibrated_keypoints(
            pipe or self.pipe, sample.prior, partial(self.segment, sample), sample.source, sample.sector_mask,
            sample.source_keypoints,
            sample.target_ef, sample.spacing_mm, self.steps, seed,
        )
        return kps[None]


class KDMAdaptModel(KDMModel):
    """``kdm-adapt:SECONDS``: KDM adapted to each sample's loop first (``echokdm predict --adapt``,
    :func:`echokdm.train.adapt.adapt_pipeline`), the target frames and their neighbours left out. It runs the
    steps of the budget (:func:`~echokdm.train.adapt.plan_steps`) uncapped, so the report is reproducible; the
    ``seconds`` column says what they cost.

    Args:
        seconds: adaptation budget (default 30).
        steps, weights: as :class:`KDMModel`.
    """

    requires = frozenset({"loop"})

    def __init__(self, seconds: float = 30.0, steps: int = DEFAULT_STEPS, weights=None) -> None:
        from echokdm.train.adapt import plan_steps

        plan_steps(seconds)
        super().__init__(steps, weights)
        self.seconds = seconds

    @classmethod
    def from_option(cls, option: str, **kwargs) -> KDMAdaptModel:
        return cls(_number(option, "kdm-adapt:SECONDS takes a number of seconds"), **kwargs)

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        from echokdm.train.adapt import adapt_pipeline, excluded_frames, plan_steps

        exclude = sorted({e for t in sample.target_frames or [] for e in excluded_frames(len(sample.loop), t)})
        seed = generator.initial_seed() % 2**32 if generator is not None else 0
        # the step count of the budget, without the wall-clock cap: the same run gives the same report
        pipe, _ = adapt_pipeline(self.pipe, sample.loop, sample.sector_mask, exclude, steps=plan_steps(self.seconds),
                                 seed=seed, labels=sample.loop_labels)
        source_kps, target_kps = self.keypoints(sample, generator, pipe)
        return self.frames(pipe, sample, source_kps, target_kps, generator)


class _ReachModel(KDMModel):
    """KDM with part of its flow faded outside the target's heart over ``PX`` working pixels
    (:func:`echokdm.flow.heart_fade`; the shipped pipeline does not fade).

    Args:
        reach: Gaussian width of the fade in working pixels (default 8).
        steps, weights: as :class:`KDMModel`.
    """

    option_name = ""
    ef_check = None

    def __init__(self, reach: float = 8.0, steps: int = DEFAULT_STEPS, weights=None) -> None:
        if not reach > 0 or not np.isfinite(reach):
            raise InputError(f"{self.option_name}:PX takes a reach in pixels > 0, got {reach:g}")
        super().__init__(steps, weights)
        self.fade(float(reach))

    def fade(self, reach: float) -> None:
        """Set the pipeline's fade."""
        raise NotImplementedError

    @classmethod
    def from_option(cls, option: str, **kwargs) -> _ReachModel:
        return cls(_number(option, f"{cls.option_name}:PX takes a reach in pixels"), **kwargs)


class KDMHeartModel(_ReachModel):
    """``kdm-heart:PX``: KDM with its whole flow faded outside the target's heart."""

    option_name = "kdm-heart"

    def fade(self, reach: float) -> None:
        self.pipe.heart_reach = reach


class KDMLocalModel(_ReachModel):
    """``kdm-local:PX``: KDM with only K2F's correction of the keypoint spline faded outside the target's heart;
    the spline's own motion is kept everywhere."""

    option_name = "kdm-local"

    def fade(self, reach: float) -> None:
        self.pipe.correction_fade = partial(heart_fade, sigma=reach)


class KDMGuardModel(KDMModel):
    """``kdm-guard:TOL``: KDM with the cavity check at another tolerance than the shipped
    :data:`echokdm.pipeline.CAVITY_TOLERANCE` (``EchoKDMPipeline.cavity_tolerance``): where K2F's flow does not carry
    the source's LV cavity onto the target's within TOL Dice of the keypoint spline, K2F's correction and F2I's
    residual are weighted down inside the target's heart until it does; ``kdm-guard:1`` never intervenes (KDM
    without the cavity check). It runs no EF check (``kdm-guard:0.05`` is ``kdm`` without it).

    Args:
        tolerance: the check's tolerance (Dice), in [0, 1].
        steps, weights: as :class:`KDMModel`.
    """

    ef_check = None

    def __init__(self, tolerance: float = CAVITY_TOLERANCE, steps: int = DEFAULT_STEPS, weights=None) -> None:
        if not 0 <= tolerance <= 1:
            raise InputError(f"kdm-guard:TOL takes a Dice tolerance in [0, 1], got {tolerance:g}")
        super().__init__(steps, weights)
        self.pipe.cavity_tolerance = float(tolerance)

    @classmethod
    def from_option(cls, option: str, **kwargs) -> KDMGuardModel:
        return cls(_number(option, "kdm-guard:TOL takes a Dice tolerance"), **kwargs)


class K2FWarpModel(KDMModel):
    """Ablation ``k2f-warp``: the K2F flow, applied by warping only (no F2I)."""

    warp_only = True
    ef_check = None


class K2IModel(Predictor):
    """Ablation ``k2i``: keypoints -> frame directly by one diffusion model, no flow.

    Args:
        steps: denoising steps.
        weights: its weights (shipped name or ``.safetensors`` path).
    """

    kind = "model"

    def __init__(self, steps: int = DEFAULT_STEPS, weights: str = K2I_WEIGHTS) -> None:
        from echokdm.models.loading import load_diffusers_model

        self.steps = steps
        self.unet = load_diffusers_model(UNet2DModel, weights)

    def to(self, device: torch.device) -> K2IModel:
        channels_last(self.unet.to(device), device, inference=True)
        return self

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        size = int(self.unet.config.sample_size)
        with autocast(self.unet.device):
            return on_source_grid(
                lambda src, src_kps, tgt_kps: self._generate(src, src_kps, tgt_kps, generator), size, sample.source,
                sample.sector_mask, sample.source_keypoints, sample.target_keypoints,
            ).frames

    @torch.no_grad()
    def _generate(self, source, src_kps, tgt_kps, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = self.unet.device
        source, src_kps, tgt_kps = source.to(device), src_kps.to(device), [k.to(device) for k in tgt_kps]
        cond = torch.cat([k2i_condition(source, src_kps, k) for k in tgt_kps])
        x = diffusion_sample(self.unet, sampling_scheduler(True), cond, 1, self.steps, generator, shared_noise=True)
        flows = torch.zeros(len(tgt_kps), 2, *source.shape[-2:], device=device)
        frames = ((x.float() + 1) / 2).clamp(0, 1)
        return frames.cpu(), flows.cpu(), warp(source.expand(len(flows), -1, -1, -1), flows).cpu()


def _number(option: str, usage: str) -> float:
    """``option`` (the text after a predictor's colon) as a number; InputError ``usage, got ...`` if it is none."""
    try:
        return float(option)
    except ValueError:
        raise InputError(f"{usage}, got {option!r}") from None
