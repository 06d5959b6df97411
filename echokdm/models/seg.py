"""Built-in LV segmenter: CAMUS labels (1 LV cavity, 2 LV myocardium, 3 LA) for every frame of a loop.

Each frame is cropped to the sector's bounding box, padded to a square (apex kept at the top centre),
resized to the working resolution (``SegModelConfig.size``, e.g. 128) and histogram-equalised inside
the sector by grey-level rank (which removes gain, gamma and compression differences between scanners). A MONAI
``UNet`` predicts the four classes; the class probabilities are smoothed lightly over time (against
flicker), mapped back to the source grid, and each structure is reduced to its largest connected
component (the LV cavity's holes filled); cavity beyond the mitral annulus goes to the LA
(:func:`echokdm.models.annulus.clip_at_annulus`).

Example::

    seg = LVSegmenter.from_pretrained()          # shipped weights "seg_a4c"
    out = seg(load_cine("study.dcm"))            # out.labels: (T, H, W) uint8 on the DICOM grid
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from monai.networks.nets import UNet
from scipy import ndimage

from echokdm.config import load_config, option
from echokdm.defaults import SEG_WEIGHTS
from echokdm.errors import InputError
from echokdm.grid import SectorFit
from echokdm.labels import LABELS
from echokdm.masks import fill_holes
from echokdm.models.annulus import clip_at_annulus

NUM_CLASSES = 4
#: Gaussian sigma (ms) of the smoothing of class probabilities over time: against flicker, far shorter than a
#: cardiac phase, so frames 100 ms or more apart (8 frames/s clips) are not blended
TEMPORAL_SIGMA_MS = 15.0
#: the moving average used when a loop's frame time is unknown (about 15 ms at 20 ms frames)
UNTIMED_KERNEL = (0.25, 0.5, 0.25)
#: 4-connectivity within a frame, none across frames: labelling a (T, H, W) stack finds each frame's 2-D components
FRAME_CONNECTIVITY = np.zeros((3, 3, 3), bool)
FRAME_CONNECTIVITY[1] = ndimage.generate_binary_structure(2, 1)


@dataclass
class SegModelConfig:
    """Network and working grid of the segmenter (stored with its weights)."""

    size: int = option(
        128, "working resolution: the sector box is padded to a square and resized to size x size", 16, 1024
    )
    channels: tuple[int, ...] = option((16, 32, 64, 128, 256), "UNet feature channels per level")
    strides: tuple[int, ...] = option((2, 2, 2, 2), "UNet down-sampling factor between levels")
    num_res_units: int = option(2, "residual units per UNet block")
    dropout: float = option(0.0, "dropout probability inside the UNet", 0.0, 0.99)
    norm: Literal["instance", "batch"] = option("instance", "normalisation layers")


def build_network(cfg: SegModelConfig) -> UNet:
    """The segmentation network: (B, 1, S, S) equalised frames -> (B, 4, S, S) class logits."""
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=NUM_CLASSES,
        channels=cfg.channels,
        strides=cfg.strides,
        num_res_units=cfg.num_res_units,
        dropout=cfg.dropout,
        norm=cfg.norm,
    )


def equalize_frames(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each frame inside the sector by grey-level rank, zero outside.

    A pixel becomes the fraction of sector pixels darker than it (ties share their mid rank), so the
    result does not change under any increasing grey-level curve (gain, gamma, log compression).

    Args:
        frames: (N, 1, S, S) float.
        mask: (S, S) or (N, 1, S, S) bool sector mask.

    Returns:
        (N, 1, S, S) float32 in [0, 1].
    """
    x = frames.detach().float().cpu()
    inside = mask.expand_as(x).cpu().reshape(len(x), -1)
    # all frames at once: pixels outside the sector rank after every pixel inside it and are dropped at the end
    keyed = torch.where(inside, x.reshape(len(x), -1), torch.inf)
    ranked = torch.sort(keyed, dim=1).values
    lo = torch.searchsorted(ranked, keyed, right=False)
    hi = torch.searchsorted(ranked, keyed, right=True)
    n = inside.sum(1, keepdim=True).clamp(min=1)
    return torch.where(inside, (lo + hi).float() / (2.0 * n), 0.0).reshape(x.shape)


def temporal_kernel(frame_time_ms: float | None, sigma_ms: float = TEMPORAL_SIGMA_MS) -> tuple[float, ...]:
    """Weights of the moving average over frames: a Gaussian of ``sigma_ms`` sampled at the frame times.

    Args:
        frame_time_ms: time between frames; None gives :data:`UNTIMED_KERNEL`.
        sigma_ms: the Gaussian's sigma in ms (0 = no smoothing).

    Returns:
        An odd number of weights summing to 1; ``(1.0,)`` when neighbours would weigh under 1%.
    """
    if not frame_time_ms or frame_time_ms <= 0:
        return UNTIMED_KERNEL
    sigma = sigma_ms / frame_time_ms
    radius = min(3, int(np.ceil(2.0 * sigma)))
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-6)) ** 2)
    w = w / w.sum()
    return (1.0,) if radius == 0 or w[radius] > 0.98 else tuple(float(x) for x in w)


def smooth_in_time(probs: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """Weighted moving average over frames (edges repeated), e.g. ``(0.25, 0.5, 0.25)``.

    Args:
        probs: (T, C, H, W).
        kernel: odd number of weights summing to 1; ``(1.0,)`` leaves ``probs`` unchanged.

    Returns:
        (T, C, H, W).
    """
    k = len(kernel)
    if k % 2 == 0:
        raise InputError(f"temporal kernel needs an odd length, got {kernel}")
    r = k // 2
    idx = torch.arange(probs.shape[0])
    out = torch.zeros_like(probs)
    for j, w in enumerate(kernel):
        out += w * probs[(idx + j - r).clamp(0, probs.shape[0] - 1)]
    return out


def largest_components(labels: np.ndarray) -> np.ndarray:
    """Keep each structure's largest connected component per frame (others -> background); fill LV cavity holes.

    Components are 4-connected within a frame, never across frames; of equally large ones the first in the
    frame's raster order is kept. All frames are labelled in one call, inside each structure's bounding box.

    Args:
        labels: (H, W) or (T, H, W) uint8 CAMUS labels.

    Returns:
        uint8 labels of the same shape.
    """
    frames = labels[None] if labels.ndim == 2 else labels
    out = np.zeros_like(frames)
    for value in (2, 3, 1):
        mask = frames == value
        covered = mask.any(0)
        rows, cols = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
        if rows.size == 0:
            continue
        box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        comp, n = ndimage.label(mask[box], FRAME_CONNECTIVITY)
        # pixels per (frame, label): labels are numbered over the whole stack, not from 1 in each frame
        frame_offset = (n + 1) * np.arange(len(comp))[:, None, None]
        sizes = np.bincount((comp + frame_offset).ravel(), minlength=len(comp) * (n + 1)).reshape(len(comp), n + 1)
        present = sizes[:, 1:].any(1)
        largest = np.zeros(n + 1, bool)
        largest[sizes[present, 1:].argmax(1) + 1] = True  # argmax: of equal sizes the lowest label, first in raster
        keep = largest[comp]
        if value == 1:
            for t in np.flatnonzero(present):  # holes of each frame's 2-D cavity
                keep[t] = fill_holes(keep[t])
        out[box][keep] = value
    return out if labels.ndim == 3 else out[0]


def area_jitter(areas: np.ndarray) -> float:
    """Frame-to-frame jitter of an area curve: mean |a[t] - (a[t-1] + a[t+1]) / 2| over the mean area.

    A smooth beating curve scores near 0; flicker of the masks raises it.
    """
    a = np.asarray(areas, dtype=np.float64)
    if a.size < 3 or a.mean() == 0:
        return 0.0
    return float(np.abs(a[1:-1] - 0.5 * (a[:-2] + a[2:])).mean() / a.mean())


@dataclass
class SegmentationOutput:
    """What :class:`LVSegmenter` returns.

    Attributes:
        labels: (T, H, W) uint8 CAMUS labels on the source grid.
        lv_area_px: (T,) LV cavity area in source pixels.
        fit: the source <-> working grid map.
        probabilities: (T, 4, S, S) time-smoothed class probabilities on the working grid.
        temporal_kernel: the weights of that smoothing over frames.
    """

    labels: np.ndarray
    lv_area_px: np.ndarray
    fit: SectorFit
    probabilities: torch.Tensor
    temporal_kernel: tuple[float, ...] = UNTIMED_KERNEL


class LVSegmenter:
    """Segment LV cavity, LV myocardium and LA in every frame of a loop.

    Args:
        network: a network from :func:`build_network` with trained weights.
        config: its :class:`SegModelConfig`.
        temporal_sigma_ms: Gaussian sigma (ms) of the probabilities' smoothing over time (see
            :func:`temporal_kernel`).
        flip_tta: also segment the left-right mirrored frames and average the probabilities (test-time
            augmentation; twice the network time).
        annulus_clip: give cavity pixels beyond the mitral annulus to the LA (:func:`clip_at_annulus`).
        device: where the network runs.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: SegModelConfig,
        temporal_sigma_ms: float = TEMPORAL_SIGMA_MS,
        flip_tta: bool = False,
        annulus_clip: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.config = config
        self.temporal_sigma_ms = temporal_sigma_ms
        self.flip_tta = flip_tta
        self.annulus_clip = annulus_clip
        #: sha256 of the weights file when built by :meth:`from_pretrained`
        self.weights_sha256: str | None = None

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike = SEG_WEIGHTS, device: str = "cpu", **kwargs) -> LVSegmenter:
        """Build from shipped weights (name, sha256-checked) or a trained ``model.safetensors``.

        Raises:
            InputError: unknown weights, or weights of another model.
        """
        from echokdm.models.loading import built_with
        from echokdm.weights import load

        w = load(weights)
        if w.task != "seg":
            raise InputError(f"weights {weights} belong to model {w.task!r}, not the segmenter 'seg'")
        cfg = load_config(w.config, SegModelConfig)
        net = built_with(lambda: build_network(cfg), w.state_dict)
        segmenter = cls(net, cfg, device=device, **kwargs)
        segmenter.weights_sha256 = w.sha256
        return segmenter

    def prepare(self, frames: torch.Tensor, sector_mask: np.ndarray) -> tuple[torch.Tensor, SectorFit]:
        """Source frames (T, H, W) in [0, 1] -> network input (T, 1, S, S) and the grid map."""
        fit = SectorFit.from_mask(sector_mask, self.config.size)
        work = fit.to_work(frames[:, None])
        mask = fit.to_work(torch.as_tensor(np.asarray(sector_mask), dtype=torch.float32)[None, None]) > 0.5
        return equalize_frames(work, mask[0, 0]), fit

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) network input -> (N, 4, S, S) float32 class probabilities (mirror-averaged with TTA)."""
        probs = torch.softmax(self.network(x).float(), 1)
        if self.flip_tta:
            probs = 0.5 * (probs + torch.softmax(self.network(x.flip(-1)).float(), 1).flip(-1))
        return probs

    @torch.no_grad()
    def __call__(
        self,
        loop: torch.Tensor | np.ndarray,
        sector_mask: np.ndarray | None = None,
        batch_size: int = 32,
        frame_time_ms: float | None = None,
    ) -> SegmentationOutput:
        """Segment a loop.

        Args:
            loop: (1, T, H, W) or (T, H, W) in [0, 1] (a ``load_cine`` MetaTensor carries its sector mask and
                frame time).
            sector_mask: (H, W) bool; default ``loop.meta["sector_mask"]``, else found from the pixels.
            batch_size: frames per network call.
            frame_time_ms: time between frames; default ``loop.meta["frame_time_ms"]`` (unknown: see
                :data:`UNTIMED_KERNEL`).

        Returns:
            :class:`SegmentationOutput`.

        Raises:
            InputError: a loop of the wrong shape or a sector mask that does not fit it.
        """
        frames = loop.as_tensor() if hasattr(loop, "as_tensor") else torch.as_tensor(np.asarray(loop))
        if frames.ndim == 4 and frames.shape[0] == 1:
            frames = frames[0]
        if frames.ndim != 3:
            raise InputError(f"expected a loop (1, T, H, W) or (T, H, W), got shape {tuple(frames.shape)}")
        frames = frames.float()
        mask = _sector_mask(loop, frames, sector_mask)
        x, fit = self.prepare(frames, mask)
        probs = torch.cat([self._probabilities(b.to(self.device)).cpu() for b in x.split(batch_size)])
        if frame_time_ms is None:
            frame_time_ms = getattr(loop, "meta", {}).get("frame_time_ms")
        kernel = temporal_kernel(frame_time_ms, self.temporal_sigma_ms)
        probs = smooth_in_time(probs, kernel)
        labels = np.empty(frames.shape, np.uint8)
        inside = torch.as_tensor(mask)
        for start in range(0, frames.shape[0], batch_size):
            chunk = fit.to_source(probs[start : start + batch_size])
            chunk[:, 0][:, ~inside] = 2.0  # background wins outside the sector
            # a chunk at a time keeps the post-processing's memory bounded on long, large loops
            chunk_labels = largest_components(_argmax_channels(chunk).numpy())
            if self.annulus_clip:
                chunk_labels = largest_components(np.stack([clip_at_annulus(lab) for lab in chunk_labels]))
            labels[start : start + batch_size] = chunk_labels
        areas = (labels == 1).reshape(labels.shape[0], -1).sum(1).astype(np.float64)
        return SegmentationOutput(labels=labels, lv_area_px=areas, fit=fit, probabilities=probs, temporal_kernel=kernel)


def _argmax_channels(probs: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W) uint8 index of the largest channel (first wins ties); faster than argmax(1)."""
    best, out = probs[:, 0].clone(), torch.zeros(probs.shape[0], *probs.shape[2:], dtype=torch.uint8)
    for c in range(1, probs.shape[1]):
        better = probs[:, c] > best
        out[better] = c
        best = torch.maximum(best, probs[:, c])
    return out


def _sector_mask(loop: object, frames: torch.Tensor, given: np.ndarray | None) -> np.ndarray:
    if given is None:
        given = getattr(loop, "meta", {}).get("sector_mask")
    if given is None:
        from echokdm.io.sector import sector_mask

        given = sector_mask((frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    mask = np.asarray(given, dtype=bool)
    if mask.shape != tuple(frames.shape[-2:]):
        raise InputError(f"sector mask of shape {mask.shape} does not fit frames of {tuple(frames.shape[-2:])}")
    return mask


def dice_per_class(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice of each structure per sample; NaN where a structure is absent from both.

    Args:
        pred, target: (B, H, W) integer label maps.

    Returns:
        name -> (B,) float tensor, for ``lv``, ``myo``, ``la``.
    """
    out = {}
    for value in (1, 2, 3):
        p, t = (pred == value).flatten(1).float(), (target == value).flatten(1).float()
        denom = p.sum(1) + t.sum(1)
        out[LABELS[value]] = torch.where(denom > 0, 2 * (p * t).sum(1) / denom.clamp(min=1), torch.nan)
    return out
