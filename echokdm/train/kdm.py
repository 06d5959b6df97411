"""Training tasks of the KDM models (``echokdm train {ofnet,flowae,k2f,f2i,k2i}``).

All five train on the same phantom frame pairs (:mod:`echokdm.train.pairs`, cached) at the working
resolution. The order follows the paper: OF-net first (unsupervised); its flows on the training pairs
are the targets of the flow autoencoder and K2F (``data.flow_source: ofnet``; ``truth`` trains on the
exact phantom flows instead); F2I learns to render a frame from the source and a flow (OF-net's, as the
paper does, or ``k2f``: the flows the trained K2F generates from the keypoints, i.e. what F2I gets at
inference); k2i is the no-flow ablation.

``data.sources`` (``--data KIND:PATH``) replaces the phantom's ``train_loops`` by ``phantom:N`` pairs and
self-supervised pairs of the user's own cines (:func:`echokdm.train.pairs.cine_pairs`), as the paper trains on
real loops: OF-net learns its photometric + smoothness loss on them; F2I renders their targets from the source
and OF-net's flow; the flow autoencoder and K2F learn OF-net's flow minus the keypoint flow, from the keypoints of
the built-in segmenter's labels (``data.seg_weights``; k2i learns from those keypoints too). A real pair has no
exact flow: ``flow_source`` must be ``ofnet`` (or, for F2I, ``k2f``: the flows K2F generates from the segmenter's
keypoints, what F2I gets at inference). Validation stays on phantom pairs, which have the exact flows the
metrics need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from diffusers import AutoencoderKL
from monai.losses import SSIMLoss

from echokdm.config import option
from echokdm.defaults import DEFAULT_STEPS, FLOW_VAE_WEIGHTS, K2F_WEIGHTS, SEG_WEIGHTS
from echokdm.errors import EchoKDMError, InputError
from echokdm.models.diffusion import diffusion_loss, sample, sampling_scheduler, training_scheduler
from echokdm.models.f2i import build_f2i_unet, compose, f2i_condition, residual_target
from echokdm.models.flow_ae import build_flow_autoencoder, decode_flow, encode_flow, flow_autoencoder_loss
from echokdm.models.k2f import build_k2f_unet, k2f_condition
from echokdm.models.k2i import build_k2i_unet, k2i_condition
from echokdm.models.loading import load_diffusers_model, load_ofnet
from echokdm.models.ofnet import OFNet, OFNetLoss
from echokdm.pipeline import EchoKDMPipeline
from echokdm.progress import progress
from echokdm.train.batch_keypoints import with_keypoints, with_moved_walls
from echokdm.train.model_flows import cached_k2f_flows, k2f_flows, ofnet_flows
from echokdm.train.pairs import (
    CinePairDataset,
    MixedPairs,
    PairDataset,
    cached_pairs,
    cine_pairs,
    keypoint_counts,
    weighted,
)
from echokdm.train.sources import SourceConfig, source_loops
from echokdm.train.task import RunConfig, TrainTask
from echokdm.train.texture import real_frames, texture_pairs


@dataclass
class PairDataConfig:
    """Phantom frame pairs (the ``data:`` section of every KDM model's config)."""

    size: int = option(112, "working resolution in pixels (square)", 16, 1024)
    n_keypoints: int | list[int] = option(
        40, "keypoints per frame: 20 (endocardium) or 40 (+ epicardium); K2F also takes a list, e.g. [20, 40]: "
        "each training batch conditions on one count drawn at random (20 = the endocardial half of the 40), "
        "validation scores every count")
    train_loops: int = option(120, "training loops (split_seeds('train', n))")
    val_loops: int = option(6, "validation loops (split_seeds('val', n)); 0 = no validation")
    every: int = option(2, "stride over target frames when cutting pairs from a loop")
    cache_dir: str = option("cache", "folder caching the generated pairs (relative: inside --out)")
    flow_source: Literal["ofnet", "truth", "k2f"] = option(
        "ofnet", "flows the model learns from: OF-net estimates (the paper), exact phantom flows, or (F2I only) "
        "the flows K2F generates from the pair's keypoints")
    ofnet_weights: str = option("ofnet", "OF-net weights (shipped name or .safetensors) when flow_source is ofnet")
    flow_vae_weights: str = option(FLOW_VAE_WEIGHTS, "flow autoencoder weights used by K2F")
    k2f_weights: str = option(K2F_WEIGHTS, "K2F weights when flow_source is k2f (with flow_vae_weights)")
    val_steps: int = option(4, "sampling steps used in validation of diffusion models", 1, 1000)
    crop: int = option(
        64,
        "random square crop (pixels, multiple of 4) when training the fully convolutional flow AE, F2I and k2i; "
        "0 = whole frames",
    )
    sources: list[SourceConfig] = option(
        [], "training data ({kind: phantom|cine-folder|echonet|camus, path, split, weight}); [] = train_loops "
        "phantom loops")
    seg_weights: str = option(SEG_WEIGHTS, "segmenter giving the keypoints of cine sources (flowae, k2f, k2i)")
    texture_sources: list[SourceConfig] = option(
        [], "real cines whose frames take the phantom training pairs' exact motion (echokdm.train.texture), added "
        "to the training pairs; weight = real-texture pairs per phantom pair (flow_source truth only)")


def random_crop(size: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random ``size``×``size`` window of each (B, C, H, W) tensor (global torch RNG); no-op when 0."""
    h, w = tensors[0].shape[-2:]
    if size <= 0 or size >= min(h, w):
        return tensors
    y0 = int(torch.randint(0, h - size + 1, ()))
    x0 = int(torch.randint(0, w - size + 1, ()))
    return tuple(t[..., y0 : y0 + size, x0 : x0 + size] for t in tensors)


def _lv_mask(batch: dict, device: torch.device) -> torch.Tensor:
    lab = batch["target_label"].to(device)
    return (lab == 1) | (lab == 2)


def _masked_epe(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    err = torch.linalg.vector_norm(pred - true, dim=1)
    m = mask.float()
    return (err * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)


def _psnr_in(pred: torch.Tensor, target: torch.Tensor, sector: torch.Tensor) -> torch.Tensor:
    m = sector[:, None]
    mse = ((pred - target) ** 2 * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


class _PairTask(TrainTask):
    """Shared data handling: cached phantom pairs, with model (OF-net or K2F) flows attached when asked for."""

    uses_model_flows = False
    #: the ``data.flow_source`` values the task accepts
    flow_sources: tuple[str, ...] = ("ofnet", "truth")
    #: whether it learns from keypoints (of a cine: the built-in segmenter's, ``data.seg_weights``)
    uses_keypoints = False
    #: whether ``data.n_keypoints`` may list several counts (the task then conditions each batch on one of them)
    mixes_keypoint_counts = False

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        #: the keypoint counts of ``data.n_keypoints``, ascending; the pairs hold the largest
        self.keypoint_counts = keypoint_counts(cfg.data.n_keypoints)
        if len(self.keypoint_counts) > 1 and not self.mixes_keypoint_counts:
            raise InputError(f"data.n_keypoints: {type(self).__name__} takes one count (20 or 40), not a list")
        if cfg.data.flow_source not in self.flow_sources:
            raise EchoKDMError(f"data.flow_source {cfg.data.flow_source!r} does not apply to {type(self).__name__}; "
                               f"use one of {', '.join(self.flow_sources)}")
        cines = [src.kind for src in cfg.data.sources if src.kind != "phantom"]
        if cfg.data.texture_sources and cfg.data.flow_source != "truth":
            raise InputError("data.texture_sources: real-texture pairs carry exact flows; set data.flow_source: truth")
        if cines and self.uses_model_flows and cfg.data.flow_source == "truth":
            raise InputError(f"data source {cines[0]}: real pairs have no exact flow; set data.flow_source: ofnet"
                             + (" or k2f" if "k2f" in self.flow_sources else ""))

    def _dataset(self, split: str, n_loops: int) -> PairDataset:
        d = self.cfg.data
        pairs = cached_pairs(d.cache_dir, split, n_loops, d.size, self.keypoint_counts[-1], d.every)
        flows = None
        if self.uses_model_flows and d.flow_source == "ofnet":
            flows = ofnet_flows(load_ofnet(d.ofnet_weights), pairs)
        elif self.uses_model_flows and d.flow_source == "k2f":
            flows = cached_k2f_flows(d, split, n_loops, self.cfg.train.seed, pairs)
        return PairDataset(pairs, flows)

    def train_dataset(self):
        d = self.cfg.data
        base = self._sources_dataset() if d.sources else self._dataset("train", d.train_loops)
        if not d.texture_sources:
            return base
        phantom = cached_pairs(d.cache_dir, "train", d.train_loops, d.size, self.keypoint_counts[-1], d.every)
        parts = []
        for i, src in enumerate(d.texture_sources):
            loops = source_loops(src)
            real = real_frames(loops, self._segment(src, loops), d.size, self.keypoint_counts[-1])
            n_pairs = round(len(phantom.pairs) * src.weight)
            parts.append(PairDataset(texture_pairs(phantom, real, n_pairs, self.cfg.train.seed + 7919 * i)))
        return MixedPairs([base, *parts])

    def _segment(self, src: SourceConfig, loops: list[dict]) -> list[np.ndarray]:
        """The built-in segmenter's (``data.seg_weights``) CAMUS labels of every frame of ``loops``."""
        from echokdm.segmenter import BuiltinSegmenter

        segment = BuiltinSegmenter(weights=self.cfg.data.seg_weights)
        return [segment(lp["frames"], sector_mask=lp["mask"], frame_time_ms=lp["frame_time_ms"])
                for lp in progress(loops, f"segmenting {src.kind} cines (keypoints)")]

    def _sources_dataset(self) -> MixedPairs:
        """The pairs of ``data.sources``, each weighted."""
        d = self.cfg.data
        parts = [
            weighted(self._dataset("train", int(src.path)) if src.kind == "phantom" else self._cine_dataset(src),
                     src.weight, self.cfg.train.seed + 7919 * i)
            for i, src in enumerate(d.sources)
        ]
        return MixedPairs(parts)

    def _cine_dataset(self, src: SourceConfig) -> CinePairDataset:
        """Self-supervised pairs of a source's cines, with the segmenter's keypoints when the task learns from
        keypoints (or F2I from K2F's flows) and the flows of ``data.flow_source`` when it learns from flows."""
        d = self.cfg.data
        loops = source_loops(src)
        labels = None
        if self.uses_keypoints or (self.uses_model_flows and d.flow_source == "k2f"):
            labels = self._segment(src, loops)
        pairs = cine_pairs(loops, d.size, d.every, labels=labels, n_keypoints=self.keypoint_counts[-1])
        if not len(pairs.pairs):
            raise InputError(f"data source {src.kind} {src.path}: no frame pair with keypoints on both frames")
        flows = None
        if self.uses_model_flows and d.flow_source == "k2f":
            pipe = EchoKDMPipeline.from_weights(d.flow_vae_weights, d.k2f_weights)
            flows = k2f_flows(pipe, pairs, self.cfg.train.seed, DEFAULT_STEPS)
        elif self.uses_model_flows:
            flows = ofnet_flows(load_ofnet(d.ofnet_weights), pairs)
        return CinePairDataset(pairs, flows)

    def val_dataset(self):
        return self._dataset("val", self.cfg.data.val_loops) if self.cfg.data.val_loops > 0 else None

    def _flow(self, batch: dict, device: torch.device) -> torch.Tensor:
        key = "model_flow" if "model_flow" in batch else "flow"
        return batch[key].to(device)

    def _correction(self, batch: dict, device: torch.device) -> torch.Tensor:
        """What K2F generates: the flow minus the keypoint (TPS) flow."""
        return self._flow(batch, device) - batch["kp_flow"].to(device)


# ----------------------------------------------------------------------------------------------- OF-net
@dataclass
class OFNetModelConfig:
    channels: tuple[int, ...] = option((16, 32, 64, 64), "UNet feature channels per level")
    max_displacement: float = option(16.0, "bound of the predicted displacement (pixels)")


@dataclass
class OFNetLossConfig:
    kernel_size: int = option(9, "LNCC window (pixels, odd)")
    smooth_weight: float = option(0.05, "weight of the smoothness (diffusion) regulariser")


@dataclass
class OFNetRunConfig(RunConfig):
    model: OFNetModelConfig = option(OFNetModelConfig, "network")
    loss: OFNetLossConfig = option(OFNetLossConfig, "unsupervised loss")
    data: PairDataConfig = option(PairDataConfig, "phantom frame pairs")


class OFNetTask(_PairTask):
    """Unsupervised optical flow; validated by end-point error against the exact flow inside the LV."""

    config_class = OFNetRunConfig
    select_metric = "epe_lv"

    def __init__(self, cfg: OFNetRunConfig) -> None:
        super().__init__(cfg)
        self.loss = OFNetLoss(cfg.loss.kernel_size, cfg.loss.smooth_weight)

    def build_model(self):
        return OFNet(self.cfg.model.channels, self.cfg.model.max_displacement)

    def training_step(self, model, batch, device):
        src, tgt = batch["source"].to(device), batch["target"].to(device)
        return self.loss(src, tgt, model(src, tgt))

    def validation_step(self, model, batch, device):
        ddf = model(batch["source"].to(device), batch["target"].to(device))
        return {"epe_lv": _masked_epe(ddf, batch["flow"].to(device), _lv_mask(batch, device))}

    def export_config(self):
        return {"channels": list(self.cfg.model.channels), "max_displacement": self.cfg.model.max_displacement}


# ------------------------------------------------------------------------------------ flow autoencoder
@dataclass
class FlowAEConfig:
    latent_channels: int = option(4, "latent channels (the latent is 4x smaller per side)")
    kl_weight: float = option(1e-4, "weight of the KL term")


@dataclass
class FlowAERunConfig(RunConfig):
    model: FlowAEConfig = option(FlowAEConfig, "autoencoder")
    data: PairDataConfig = option(PairDataConfig, "phantom frame pairs")


class _TrainableFlowAE(AutoencoderKL):
    """The flow autoencoder with the training loss as its forward, so that DDP sees the forward pass.

    Same parameters and config as :class:`AutoencoderKL`: its weights load into the plain class.
    """

    def forward(self, flow: torch.Tensor, kl_weight: float) -> torch.Tensor:  # type: ignore[override]
        return flow_autoencoder_loss(self, flow, kl_weight)[0]


class FlowAETask(_PairTask):
    """Flow autoencoder of K2F's target, flow − keypoint flow; validated by reconstruction EPE inside the LV."""

    config_class = FlowAERunConfig
    select_metric = "epe_lv"
    uses_model_flows = True
    uses_keypoints = True

    def build_model(self):
        return build_flow_autoencoder(self.cfg.data.size, self.cfg.model.latent_channels, _TrainableFlowAE)

    def training_step(self, model, batch, device):
        (flow,) = random_crop(self.cfg.data.crop, self._correction(batch, device))
        return model(flow, self.cfg.model.kl_weight)

    def validation_step(self, model, batch, device):
        corr = self._correction(batch, device)
        return {"epe_lv": _masked_epe(decode_flow(model, encode_flow(model, corr)), corr, _lv_mask(batch, device))}

    def export_config(self):
        return dict(build_flow_autoencoder(self.cfg.data.size, self.cfg.model.latent_channels).config)


# ---------------------------------------------------------------------------------------------- K2F
@dataclass
class K2FDataConfig(PairDataConfig):
    """K2F's pairs: :class:`PairDataConfig` and how their target walls are given."""

    moved_wall_prob: float = option(
        0.0, "probability that a 40-keypoint training pair's target epicardium is the source's moved with the "
        "endocardium at constant area (echokdm.keypoints.move_epicardium), as predict and evaluate give the "
        "target wall; the flow to learn stays the true one", 0.0, 1.0)


@dataclass
class K2FRunConfig(RunConfig):
    data: K2FDataConfig = option(K2FDataConfig, "phantom frame pairs")


class K2FTask(_PairTask):
    """Keypoints → flow latent diffusion; validated by the end-point error of sampled flows in the LV.

    With several ``data.n_keypoints`` (e.g. ``[20, 40]``) one network learns every count: each training batch
    keeps the first ``n`` keypoints of each frame (``n`` drawn uniformly per batch from the global torch RNG; the
    first 20 of 40 are the endocardium) with their own keypoint flow, and validation reports ``epe_lv_kpN`` per
    count and, as ``epe_lv`` (the selection metric), their mean.
    """

    config_class = K2FRunConfig
    select_metric = "epe_lv"
    uses_model_flows = True
    uses_keypoints = True
    mixes_keypoint_counts = True

    def __init__(self, cfg: K2FRunConfig) -> None:
        super().__init__(cfg)
        self.scheduler = training_scheduler(clip_sample=False)
        self._vae: AutoencoderKL | None = None

    def vae(self, device: torch.device) -> AutoencoderKL:
        if self._vae is None:
            self._vae = load_diffusers_model(AutoencoderKL, self.cfg.data.flow_vae_weights)
        return self._vae.to(device)

    def build_model(self):
        return build_k2f_unet(self.cfg.data.size // 4, self.vae(torch.device("cpu")).config.latent_channels)

    def _cond(self, batch, device):
        return k2f_condition(batch["source"].to(device), batch["src_kps"].to(device), batch["tgt_kps"].to(device),
                             batch["kp_flow"].to(device))

    def training_step(self, model, batch, device):
        counts = self.keypoint_counts
        if len(counts) > 1:
            batch = with_keypoints(batch, counts[int(torch.randint(len(counts), ()))])
        if self.cfg.data.moved_wall_prob > 0:
            batch = with_moved_walls(batch, torch.rand(len(batch["tgt_kps"])) < self.cfg.data.moved_wall_prob)
        z0 = encode_flow(self.vae(device), self._correction(batch, device))
        return diffusion_loss(model, self.scheduler, z0, self._cond(batch, device))

    def validation_step(self, model, batch, device):
        if len(self.keypoint_counts) == 1:
            return self._validate_flows(model, batch, device)
        out: dict[str, torch.Tensor] = {}
        for n in self.keypoint_counts:
            values = self._validate_flows(model, with_keypoints(batch, n), device)
            out.update({f"{k}_kp{n}": v for k, v in values.items()})
        out["epe_lv"] = torch.stack([out[f"epe_lv_kp{n}"] for n in self.keypoint_counts]).mean(0)
        return out

    def _validate_flows(self, model, batch, device) -> dict[str, torch.Tensor]:
        cond = self._cond(batch, device)
        z = sample(model, sampling_scheduler(False), cond, model.config.out_channels, self.cfg.data.val_steps,
                   torch.Generator(device).manual_seed(0))
        flow = batch["kp_flow"].to(device) + decode_flow(self.vae(device), z)
        mask = _lv_mask(batch, device)
        return {"epe_lv": _masked_epe(flow, batch["flow"].to(device), mask),
                "epe_lv_tps": _masked_epe(batch["kp_flow"].to(device), batch["flow"].to(device), mask)}

    def export_config(self):
        return dict(build_k2f_unet(self.cfg.data.size // 4).config)


# ---------------------------------------------------------------------------------------------- F2I
@dataclass
class F2ILossConfig:
    """F2I's training loss: the denoising MSE plus an optional SSIM term on the rendered frame."""

    ssim_weight: float = option(0.0, "weight of 1 - SSIM(warped source + predicted residual, target frame)")


@dataclass
class F2IRunConfig(RunConfig):
    data: PairDataConfig = option(PairDataConfig, "phantom frame pairs")
    loss: F2ILossConfig = option(F2ILossConfig, "training loss")


class F2ITask(_PairTask):
    """Flow → frame diffusion (residual over the warped source); validated by PSNR in the sector."""

    config_class = F2IRunConfig
    select_metric = "psnr"
    select_mode = "max"
    uses_model_flows = True
    flow_sources = ("ofnet", "truth", "k2f")

    def __init__(self, cfg: F2IRunConfig) -> None:
        super().__init__(cfg)
        self.scheduler = training_scheduler(clip_sample=True)
        self.ssim = SSIMLoss(spatial_dims=2, data_range=1.0)

    def build_model(self):
        return build_f2i_unet(self.cfg.data.size)

    def training_step(self, model, batch, device):
        target = batch["target"].to(device)
        cond, warped = f2i_condition(batch["source"].to(device), self._flow(batch, device))
        x0, cond, warped, target = random_crop(
            self.cfg.data.crop, residual_target(target, warped), cond, warped, target
        )
        w = self.cfg.loss.ssim_weight
        if not w:
            return diffusion_loss(model, self.scheduler, x0, cond)
        mse, residual = diffusion_loss(model, self.scheduler, x0, cond, return_prediction=True)
        return mse + w * self.ssim(compose(warped, residual), target)

    def validation_step(self, model, batch, device):
        cond, warped = f2i_condition(batch["source"].to(device), self._flow(batch, device))
        res = sample(
            model, sampling_scheduler(True), cond, 1, self.cfg.data.val_steps, torch.Generator(device).manual_seed(0)
        )
        tgt, sector = batch["target"].to(device), batch["sector"].to(device)
        return {"psnr": _psnr_in(compose(warped, res), tgt, sector), "psnr_warp": _psnr_in(warped, tgt, sector)}

    def export_config(self):
        return dict(build_f2i_unet(self.cfg.data.size).config)


# ---------------------------------------------------------------------------------------------- k2i
@dataclass
class K2IRunConfig(RunConfig):
    data: PairDataConfig = option(PairDataConfig, "phantom frame pairs")


class K2ITask(_PairTask):
    """The no-flow ablation: keypoints → frame diffusion; validated by PSNR in the sector."""

    config_class = K2IRunConfig
    select_metric = "psnr"
    select_mode = "max"
    uses_keypoints = True

    def __init__(self, cfg: K2IRunConfig) -> None:
        super().__init__(cfg)
        self.scheduler = training_scheduler(clip_sample=True)

    def build_model(self):
        return build_k2i_unet(self.cfg.data.size)

    def _cond(self, batch, device):
        return k2i_condition(batch["source"].to(device), batch["src_kps"].to(device), batch["tgt_kps"].to(device))

    def training_step(self, model, batch, device):
        x0, cond = random_crop(self.cfg.data.crop, batch["target"].to(device) * 2 - 1, self._cond(batch, device))
        return diffusion_loss(model, self.scheduler, x0, cond)

    def validation_step(self, model, batch, device):
        x = sample(model, sampling_scheduler(True), self._cond(batch, device), 1, self.cfg.data.val_steps,
                   torch.Generator(device).manual_seed(0))
        return {"psnr": _psnr_in(((x + 1) / 2).clamp(0, 1), batch["target"].to(device), batch["sector"].to(device))}

    def export_config(self):
        return dict(build_k2i_unet(self.cfg.data.size).config)


__all__ = ["F2ITask", "FlowAETask", "K2FTask", "K2ITask", "OFNetTask", "PairDataConfig"]
