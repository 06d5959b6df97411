"""Real texture, exact motion: phantom cardiac motion carried onto real frames (``data.texture_sources``).

A phantom pair (source keypoints ``K_s``, target keypoints ``K_t``, exact pull flow ``F``) moves a phantom heart;
a real frame ``R`` with the built-in segmenter's keypoints ``K_R`` shows a real one. A thin-plate spline ``phi``
maps the real frame onto the phantom source (``K_R -> K_s``), ``psi`` maps back (``K_s -> K_R``), and the phantom
motion is conjugated into the real frame: the pull flow of the real pair is

    G(y) = psi(phi(y) + F(phi(y))) - psi(phi(y))

(``psi(phi(y))`` rather than ``y``: the two splines are each other's inverse only at the keypoints and anchors),

the target is ``R`` warped by ``G`` and its keypoints are ``psi(K_t)``. The motion of the pair is exact (its target
is made by that flow) and its texture is the study's own speckle, so K2F and the flow autoencoder can learn
``flow - keypoint flow`` on real frames. A real frame is paired with phantom pairs of its phase: frames with a large
LV cavity with pairs from ED, small ones with pairs from ES.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import map_coordinates
from skimage.transform import ThinPlateSplineTransform

from echokdm.errors import InputError
from echokdm.flow import keypoint_flow, warp
from echokdm.grid import SectorFit
from echokdm.progress import progress
from echokdm.train.pairs import PairSet, working_keypoints

#: cavity-area fraction (0 smallest, 1 largest of its loop) a real frame needs to take an ED-source phantom pair
#: (at least this) or an ES-source one (at most 1 - this)
PHASE_FRACTION = 0.6


@dataclass
class RealFrames:
    """Frames of real loops on the working grid, with the segmenter's labels and keypoints.

    Attributes:
        frames: (F, S, S) uint8 frames.
        labels: (F, S, S) uint8 CAMUS labels (nearest-neighbour on the working grid).
        keypoints: (F, K, 2) float32 keypoints (x, y) from the source-resolution labels, as ``echokdm predict``
            takes them; NaN for a frame without a usable LV.
        sector: (F, S, S) uint8 sector mask of each frame's loop.
        area: (F,) float32 LV-cavity area of each frame as a fraction of its loop's range (0 smallest, 1 largest).
    """

    frames: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    sector: np.ndarray
    area: np.ndarray


def real_frames(loops: list[dict], labels: list[np.ndarray], size: int, n_keypoints: int = 40) -> RealFrames:
    """The frames of ``loops`` (:func:`~echokdm.train.sources.source_loops` entries) with their (T, H, W) CAMUS
    ``labels``, mapped onto the ``size`` working grid by :class:`~echokdm.grid.SectorFit` as ``echokdm predict`` maps
    its input."""
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for lp, lab in zip(loops, labels):
        fit = SectorFit.from_mask(lp["mask"], size)
        x = torch.from_numpy(np.ascontiguousarray(lp["frames"], dtype=np.float32))[:, None]
        frames = (fit.to_work(x)[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        work_lab = fit.to_work(torch.from_numpy(lab.astype(np.float32))[:, None], "nearest")[:, 0].numpy()
        sector = fit.to_work(torch.from_numpy(lp["mask"])[None, None], "nearest")[0, 0].numpy().astype(np.uint8)
        cavity = (lab == 1).sum((1, 2)).astype(np.float32)
        area = (cavity - cavity.min()) / max(float(np.ptp(cavity)), 1.0)
        for part, value in zip(parts, (frames, work_lab.astype(np.uint8), working_keypoints(lab, fit, n_keypoints),
                                       np.repeat(sector[None], len(frames), 0), area)):
            part.append(value)
    return RealFrames(*(np.concatenate(p) for p in parts))


def _tps(src: np.ndarray, dst: np.ndarray, size: int) -> ThinPlateSplineTransform:
    """Thin-plate spline (x, y) taking ``src`` keypoints to ``dst``, the image corners and edge midpoints fixed (as
    :func:`echokdm.flow.keypoint_flow` anchors its spline)."""
    edge = (0.0, (size - 1) / 2, size - 1.0)
    anchors = np.array([(x, y) for x in edge for y in edge if (x, y) != (edge[1], edge[1])])
    return ThinPlateSplineTransform.from_estimate(np.concatenate([src, anchors]), np.concatenate([dst, anchors]))


def transport_motion(
    real_kps: np.ndarray, src_kps: np.ndarray, tgt_kps: np.ndarray, flow: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The phantom motion of a pair (``src_kps`` -> ``tgt_kps``, exact pull ``flow`` (2, S, S), channels (dy, dx))
    carried onto a real frame with keypoints ``real_kps`` (K, 2) (x, y), all on one S x S grid.

    Returns:
        The real pair's pull flow (2, S, S) float32 and its target keypoints (K, 2) float32.
    """
    size = flow.shape[-1]
    real, src = np.asarray(real_kps, np.float64), np.asarray(src_kps, np.float64)
    phi, psi = _tps(real, src, size), _tps(src, real, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.stack([xx.ravel(), yy.ravel()], 1)
    p = phi(grid)  # each real target pixel on the phantom target frame
    rc = [p[:, 1], p[:, 0]]
    dy, dx = (map_coordinates(np.asarray(c, np.float64), rc, order=1, mode="nearest") for c in flow)
    # its phantom source location, back on the real frame, less the round trip psi(phi(y)) - y (psi is phi's inverse
    # only at the keypoints and anchors: far from them the trip alone would move the frame)
    d = psi(np.stack([p[:, 0] + dx, p[:, 1] + dy], 1)) - psi(p)
    g = np.stack([d[:, 1].reshape(size, size), d[:, 0].reshape(size, size)])
    return g.astype(np.float32), psi(np.asarray(tgt_kps, np.float64)).astype(np.float32)


def texture_pairs(phantom: PairSet, real: RealFrames, n_pairs: int, seed: int) -> PairSet:
    """``n_pairs`` real-texture pairs: each a random phantom pair of ``phantom``, carried onto a random real frame
    of its phase (:data:`PHASE_FRACTION`) by :func:`transport_motion`.

    The result is a :class:`PairSet` with one two-frame loop per pair: frames (real source, warped source), labels
    (the source's, and them warped by the flow, nearest), keypoints (the real frame's and the transported target
    keypoints), the exact flow and the keypoint (TPS) flow; ``ed`` and ``es`` both hold the pair's source frame.
    """
    rng = np.random.default_rng(seed)
    usable = ~np.isnan(real.keypoints).any((1, 2))
    large = np.flatnonzero(usable & (real.area >= PHASE_FRACTION))
    small = np.flatnonzero(usable & (real.area <= 1 - PHASE_FRACTION))
    if not len(large) or not len(small):
        raise InputError("real-texture pairs: the real loops need frames with keypoints at both phases (large and "
                         "small LV cavity)")
    src_is_ed = np.isin(phantom.pairs[:, 0], phantom.ed)
    size = phantom.frames.shape[-1]
    frames, labels, kps, flows, kp_flows, sectors = [], [], [], [], [], []
    for i in progress(rng.integers(0, len(phantom.pairs), n_pairs), "real-texture pairs"):
        s, t = phantom.pairs[i]
        r = int(rng.choice(large if src_is_ed[i] else small))
        g, tgt_kps = transport_motion(real.keypoints[r], phantom.keypoints[s], phantom.keypoints[t],
                                      phantom.flow[i].astype(np.float32))
        moved = warp(real.frames[r].astype(np.float32), g).numpy()
        frames += [real.frames[r], np.clip(moved, 0, 255).round().astype(np.uint8)]
        labels += [real.labels[r], warp(real.labels[r], g, "nearest").numpy().astype(np.uint8)]
        kps += [real.keypoints[r], tgt_kps]
        flows.append(g.astype(np.float16))
        kp_flows.append(keypoint_flow(real.keypoints[r], tgt_kps, (size, size)).astype(np.float16))
        sectors.append(real.sector[r])
    n = len(flows)
    first = np.arange(0, 2 * n, 2, dtype=np.int32)
    return PairSet(
        np.stack(frames), np.stack(labels), np.stack(kps), np.repeat(np.arange(n, dtype=np.int32), 2),
        np.stack(sectors), first, first.copy(), np.stack([first, first + 1], 1), np.stack(flows), np.stack(kp_flows),
    )


__all__ = ["PHASE_FRACTION", "RealFrames", "real_frames", "texture_pairs", "transport_motion"]
