"""The source grid of a loop and the square working grid of the models, and KDM run on the source grid.

:class:`SectorFit` maps between the two (the segmenter and KDM share it); :func:`residual_transfer` carries what
is generated on the working grid back to the full-resolution source; :func:`on_source_grid` is the whole round
trip for any generator, and :func:`kdm_on_source_grid` the one ``echokdm predict``, the harness and the bundle run:
fit -> K2F flow and F2I frames on the working grid -> residual transfer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from echokdm.defaults import DEFAULT_STEPS, K2F_STEPS
from echokdm.errors import InputError
from echokdm.flow import cavity_overlap, warp

#: times a named stage: ``with clock("k2f"): ...`` (e.g. :class:`echokdm.predict.StageClock`)
Clock = Callable[[str], contextlib.AbstractContextManager]
#: working-grid source (1, 1, S, S), source keypoints (1, K, 2), target keypoint sets [(1, K, 2), ...] ->
#: (frames (N, 1, S, S), pull flows (N, 2, S, S), the source warped by each flow (N, 1, S, S))
WorkingGridModel = Callable[
    [torch.Tensor, torch.Tensor, list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


@dataclass(frozen=True)
class SectorFit:
    """The map between a source grid and the square working grid around its sector.

    The sector box is cropped, padded to a square (rows at the bottom, columns on both sides, so the apex
    stays at the top centre) and resized to ``size``.

    Attributes:
        shape: source (H, W).
        box: sector box (x0, y0, x1, y1), inclusive pixels.
        size: working resolution.
    """

    shape: tuple[int, int]
    box: tuple[int, int, int, int]
    size: int

    @classmethod
    def from_mask(cls, mask: np.ndarray | torch.Tensor, size: int) -> SectorFit:
        """Fit around the True pixels of an (H, W) sector mask (the whole image when it is empty)."""
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 2:
            raise InputError(f"sector mask must be (H, W), got shape {m.shape}")
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        h, w = m.shape
        box = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])) if rows.size else (0, 0, w - 1, h - 1)
        return cls(shape=(h, w), box=box, size=size)

    @property
    def _pads(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.box
        bh, bw = y1 - y0 + 1, x1 - x0 + 1
        side = max(bh, bw)
        left = (side - bw) // 2
        return left, side - bw - left, 0, side - bh

    def to_work(self, x: torch.Tensor, mode: Literal["bilinear", "nearest"] = "bilinear") -> torch.Tensor:
        """Source (N, C, H, W) -> working (N, C, size, size) (``nearest`` for label maps)."""
        x0, y0, x1, y1 = self.box
        crop = F.pad(x[..., y0 : y1 + 1, x0 : x1 + 1].float(), self._pads)
        if mode == "nearest":
            return F.interpolate(crop, size=(self.size, self.size), mode="nearest-exact")
        return F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)

    def to_source(self, y: torch.Tensor) -> torch.Tensor:
        """Working (N, C, size, size) -> source (N, C, H, W), bilinear; zeros outside the sector box."""
        left, right, _, bottom = self._pads
        x0, y0, x1, y1 = self.box
        side = y1 - y0 + 1 + bottom
        up = F.interpolate(y.float(), size=(side, side), mode="bilinear", align_corners=False)
        out = y.new_zeros((*y.shape[:2], *self.shape), dtype=torch.float32)
        out[..., y0 : y1 + 1, x0 : x1 + 1] = up[..., : side - bottom, left : side - right]
        return out

    @property
    def side(self) -> int:
        """Side (source pixels) of the padded square that becomes the working grid."""
        x0, y0, x1, y1 = self.box
        return max(y1 - y0 + 1, x1 - x0 + 1)

    def points_to_work(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 2) (x, y) in source pixels -> working pixels, matching :meth:`to_work`.

        Pixel centres map as ``F.interpolate(align_corners=False)`` maps them: ``u = (x' + 0.5) size / side - 0.5``
        with ``x'`` the position inside the padded square.
        """
        x0, y0 = self.box[0] - self._pads[0], self.box[1]
        return (np.asarray(points, dtype=np.float64) - (x0, y0) + 0.5) * (self.size / self.side) - 0.5

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 2) (x, y) in working pixels -> source pixels (inverse of :meth:`points_to_work`)."""
        x0, y0 = self.box[0] - self._pads[0], self.box[1]
        return (np.asarray(points, dtype=np.float64) + 0.5) * (self.side / self.size) - 0.5 + (x0, y0)

    def flow_to_source(self, flow: torch.Tensor) -> torch.Tensor:
        """Displacement fields (N, 2, size, size) in working pixels -> (N, 2, H, W) in source pixels.

        The working grid is a scaled and shifted copy of the source grid, so a displacement is resampled
        like an image (:meth:`to_source`) and multiplied by the scale; it is zero outside the sector box.
        """
        return self.to_source(flow) * (self.side / self.size)


def residual_transfer(
    source: torch.Tensor, sector: np.ndarray, fit: SectorFit, flows: torch.Tensor, residuals: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Carry working-grid predictions to the full-resolution source grid.

    The source is warped by the up-sampled flow (scaled to source pixels) and the up-sampled residual (generated
    minus warped, on the working grid) is added; pixels outside the sector stay as the source.

    Args:
        source: (H, W) full-resolution source frame in [0, 1].
        sector: (H, W) bool sector mask.
        fit: the working grid.
        flows: (N, 2, S, S) pull flows on the working grid (working pixels).
        residuals: (N, 1, S, S) generated frame minus the warped source, on the working grid.

    Returns:
        (frames (N, H, W) float32 in [0, 1], flows (N, 2, H, W) float32 in source pixels, zero outside the sector).
    """
    flow_src = fit.flow_to_source(flows)
    warped = warp(source.expand(len(flows), 1, -1, -1).float(), flow_src)
    frames = (warped + fit.to_source(residuals)).clamp(0, 1)[:, 0]
    inside = torch.from_numpy(np.asarray(sector, dtype=bool))
    frames = torch.where(inside, frames, source.float())
    return frames.numpy().astype(np.float32), (flow_src * inside).numpy().astype(np.float32)


@dataclass
class SourceGridOutput:
    """What :func:`on_source_grid` returns.

    Attributes:
        frames: (N, H, W) float32 frames in [0, 1] on the source grid.
        flows: (N, 2, H, W) float32 pull flows source -> each frame, source pixels, channels (dy, dx).
        fit: the working grid they were generated on.
        trust: the weight K2F's correction and F2I's residual kept inside the target's heart (the cavity check of
            :meth:`echokdm.pipeline.EchoKDMPipeline.generate_flow`): 1 where the check passed at once, and for
            generators without one.
        strict_same: the cavity check at tolerance 0 (``strict``) keeps this flow whole, so a strict run with the
            same noise makes the same frames (the EF check then skips it); False for generators without a check.
    """

    frames: np.ndarray
    flows: np.ndarray
    fit: SectorFit
    trust: float = 1.0
    strict_same: bool = False


def on_source_grid(
    generate: WorkingGridModel,
    size: int,
    source: np.ndarray | torch.Tensor,
    sector: np.ndarray,
    source_keypoints: np.ndarray,
    target_keypoints: np.ndarray,
    clock: Clock | None = None,
) -> SourceGridOutput:
    """Fit the working grid around the sector, generate there, and carry the result back by residual transfer.

    Args:
        generate: the model on the working grid (see :data:`WorkingGridModel`).
        size: its working resolution S.
        source: (H, W) source frame in [0, 1].
        sector: (H, W) bool sector mask.
        source_keypoints: (K, 2) keypoints (x, y) of the source, source pixels.
        target_keypoints: (K, 2) or (N, K, 2) keypoints to reach, source pixels.
        clock: times the stages ``prepare`` and ``transfer`` (``generate`` times its own).

    Returns:
        The frames and flows on the source grid, and the fit.
    """
    clock = clock or _no_clock
    with clock("prepare"):
        fit = SectorFit.from_mask(sector, size)
        src = (
            torch.as_tensor(np.ascontiguousarray(source, dtype=np.float32))
            if isinstance(source, np.ndarray)
            else source
        )
        src_work = fit.to_work(src[None, None])
        targets = np.asarray(target_keypoints)
        kps = [torch.from_numpy(fit.points_to_work(k)).float()[None]
               for k in (source_keypoints, *(targets[None] if targets.ndim == 2 else targets))]
    frames, flows, warped = generate(src_work, kps[0], kps[1:])
    with clock("transfer"):
        out, flows_src = residual_transfer(src, sector, fit, flows.float().cpu(), (frames - warped).float().cpu())
    return SourceGridOutput(out, flows_src, fit)


def kdm_on_source_grid(
    pipeline,
    source: np.ndarray | torch.Tensor,
    sector: np.ndarray,
    source_keypoints: np.ndarray,
    target_keypoints: np.ndarray,
    alphas: Sequence[float] | None = None,
    num_inference_steps: int = DEFAULT_STEPS,
    generator: torch.Generator | None = None,
    warp_only: bool = False,
    clock: Clock | None = None,
    k2f_steps: int = K2F_STEPS,
    strict: bool = False,
) -> SourceGridOutput:
    """KDM on the source grid: one K2F flow to the last target, F2I frames along it, residual transfer back.

    Args:
        pipeline: an :class:`~echokdm.pipeline.EchoKDMPipeline` (working resolution ``pipeline.sample_size``).
        source: (H, W) source frame in [0, 1].
        sector: (H, W) bool sector mask.
        source_keypoints: (K, 2) keypoints (x, y) of the source, source pixels.
        target_keypoints: (K, 2) or (N, K, 2) keypoints to reach; K2F runs to the last set.
        alphas: fraction of that motion each frame shows, in (0, 1]; default: each target set's
            (:func:`motion_fractions`; 1 for a single set).
        num_inference_steps: denoising steps of F2I.
        generator: seeds the sampling noise.
        warp_only: warp the source by the K2F flow instead of rendering with F2I (the ``k2f-warp`` ablation).
        clock: times the stages ``prepare``, ``k2f``, ``f2i`` and ``transfer``.
        k2f_steps: denoising steps of K2F.
        strict: the cavity check at tolerance 0 (``EchoKDMPipeline.generate_flow``).

    Returns:
        The frames (one per alpha) and flows on the source grid, the fit, and the cavity check's ``trust``.
    """
    clock = clock or _no_clock
    device, dtype = pipeline.f2i_unet.device, pipeline.f2i_unet.dtype
    kept = []  # the cavity check's weight inside the heart, and whether a strict check would keep the flow whole

    def generate(src: torch.Tensor, src_kps: torch.Tensor, tgt_kps: list[torch.Tensor]):
        fractions = motion_fractions(src_kps[0].numpy(), [k[0].numpy() for k in tgt_kps]) if alphas is None else alphas
        src = src.to(device, dtype)
        with clock("k2f"):
            kps = src_kps.to(device), tgt_kps[-1].to(device)
            flow, kp_flow, trust = pipeline.generate_flow(src, *kps, k2f_steps, generator, strict)
            # the strict check passes at full trust: a strict run would make this very flow
            carried = cavity_overlap(flow, *kps) >= cavity_overlap(kp_flow, *kps)
        kept.append((float(trust.min()), strict or (float(trust.min()) == 1.0 and bool(carried.all()))))
        with clock("f2i"):
            if not warp_only:
                return pipeline.render(src, flow, fractions, num_inference_steps, generator, trust)
            flows = torch.cat([a * flow for a in fractions])
            frames = warp(src.expand(len(flows), -1, -1, -1), flows)
            return frames, flows, frames

    out = on_source_grid(generate, pipeline.sample_size, source, sector, source_keypoints, target_keypoints, clock)
    return replace(out, trust=kept[0][0], strict_same=kept[0][1])


def motion_fractions(source: np.ndarray, targets: list[np.ndarray]) -> list[float]:
    """Fraction of the source -> last-target keypoint motion that each target shows (least squares, in (0, 1]).

    Args:
        source: (K, 2) keypoints.
        targets: N (K, 2) keypoint sets, the last one the end of the motion (a single set: 1).
    """
    if len(targets) == 1:
        return [1.0]
    full = (targets[-1] - source).ravel()
    denom = float(full @ full) or 1.0
    return [float(np.clip((t - source).ravel() @ full / denom, 1e-3, 1.0)) for t in targets]


@contextlib.contextmanager
def _no_clock(name: str):
    yield
