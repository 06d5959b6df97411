"""The KDM model and its ablations as harness predictors: ``kdm``, ``k2f-warp`` and ``k2i``.

Each maps the sample onto the models' square working grid around the sector (the same
:class:`~echokdm.models.seg.SectorFit` that ``echokdm predict`` uses), generates there, and carries the
result back to the sample's grid by residual transfer (:func:`echokdm.predict.residual_transfer`), so the
three are compared exactly as users would run them.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from diffusers import UNet2DModel

from echokdm.evaluate.predictors import Predictor
from echokdm.evaluate.tasks import Sample
from echokdm.models.diffusion import sample as diffusion_sample
from echokdm.models.diffusion import sampling_scheduler
from echokdm.models.k2i import k2i_condition
from echokdm.models.seg import SectorFit


class _WorkingGrid(Predictor):
    """Shared plumbing: sample -> working grid -> generate -> back (subclasses implement ``_generate``).

    Args:
        steps: denoising steps of each diffusion stage.
    """

    kind = "model"

    def __init__(self, steps: int = 10) -> None:
        self.steps = steps

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        from echokdm.predict import residual_transfer

        fit = SectorFit.from_mask(sample.sector_mask, self.size)
        source = torch.from_numpy(np.ascontiguousarray(sample.source, dtype=np.float32))
        src_work = fit.to_work(source[None, None])
        src_kps = torch.from_numpy(fit.points_to_work(sample.source_keypoints)).float()[None]
        tgt_kps = [torch.from_numpy(fit.points_to_work(k)).float()[None] for k in sample.target_keypoints]
        flows, frames = self._generate(src_work, src_kps, tgt_kps, generator)
        residuals = frames - _warp(src_work, flows)
        out, _ = residual_transfer(source, sample.sector_mask, fit, flows, residuals)
        return out

    @property
    @abstractmethod
    def size(self) -> int:
        """Working resolution of the model."""

    @abstractmethod
    def _generate(self, source, src_kps, tgt_kps, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 1, S, S) source, keypoints per target -> (flows (N, 2, S, S), frames (N, 1, S, S))."""


def _warp(source: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    from echokdm.flow import warp

    return warp(source.expand(len(flows), -1, -1, -1), flows)


class KDMModel(_WorkingGrid):
    """KDM: K2F flow from the keypoints, F2I frame from the flow (the shipped pipeline).

    A ``sequence`` sample is continuous generation: one K2F run to the last target, its flow scaled by
    alpha for the others.

    Args:
        steps: denoising steps of each stage.
        weights: the pipeline's weights (default: shipped), see :class:`echokdm.predict.PredictWeights`.
    """

    warp_only = False

    def __init__(self, steps: int = 10, weights=None) -> None:
        super().__init__(steps)
        from echokdm.pipeline import EchoKDMPipeline
        from echokdm.predict import PredictWeights

        w = weights or PredictWeights()
        self.pipe = EchoKDMPipeline.from_weights(w.flow_vae, w.k2f, w.f2i)

    @property
    def size(self) -> int:
        return self.pipe.sample_size

    def _generate(self, source, src_kps, tgt_kps, generator):
        flow, _ = self.pipe.generate_flow(source, src_kps, tgt_kps[-1], self.steps, generator)
        # continuous generation: alpha = fraction of the final motion reached by each target
        alphas = _alphas(src_kps[0].numpy(), [k[0].numpy() for k in tgt_kps]) if len(tgt_kps) > 1 else [1.0]
        if self.warp_only:
            flows = torch.cat([a * flow for a in alphas])
            return flows, _warp(source, flows)
        frames, flows, _ = self.pipe.render(source, flow, alphas, self.steps, generator)
        return flows, frames


class K2FWarpModel(KDMModel):
    """Ablation ``k2f-warp``: the K2F flow, applied by warping only (no F2I)."""

    warp_only = True


class K2IModel(_WorkingGrid):
    """Ablation ``k2i``: keypoints -> frame directly by one diffusion model, no flow."""

    def __init__(self, steps: int = 10, weights: str = "kdm_k2i") -> None:
        super().__init__(steps)
        from echokdm.models.loading import load_diffusers_model

        self.unet = load_diffusers_model(UNet2DModel, weights)

    @property
    def size(self) -> int:
        return int(self.unet.config.sample_size)

    @torch.no_grad()
    def _generate(self, source, src_kps, tgt_kps, generator):
        cond = torch.cat([k2i_condition(source, src_kps, k) for k in tgt_kps])
        x = diffusion_sample(self.unet, sampling_scheduler(True), cond, 1, self.steps, generator, shared_noise=True)
        return torch.zeros(len(tgt_kps), 2, *source.shape[-2:]), ((x + 1) / 2).clamp(0, 1)


def _alphas(src: np.ndarray, targets: list[np.ndarray]) -> list[float]:
    """Fraction of the source -> last-target keypoint motion that each target shows (least squares, in (0, 1])."""
    full = (targets[-1] - src).ravel()
    denom = float(full @ full) or 1.0
    return [float(np.clip((t - src).ravel() @ full / denom, 1e-3, 1.0)) for t in targets]
