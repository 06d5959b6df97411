"""Dense displacement fields: warping, keypoint-driven flows, error measures and pictures.

All fields follow ``data_specs/conventions.md``: (2, H, W) or (B, 2, H, W) float32 in pixels, channels
(dy, dx), backward ("pull") convention, so ``warp(A, u) ≈ B`` when ``u`` takes ``A`` to ``B``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.networks.blocks import Warp
from scipy.interpolate import RBFInterpolator
from scipy.ndimage import distance_transform_edt
from skimage.draw import polygon
from skimage.transform import ThinPlateSplineTransform

from echokdm.errors import EchoKDMError

# MONAI notes on every first use that it falls back to torch's grid_sample (its compiled op is optional)
warnings.filterwarnings("ignore", message="monai.networks.blocks.Warp: Using PyTorch native grid_sample")
_WARP = {mode: Warp(mode=mode, padding_mode="border") for mode in ("bilinear", "nearest")}

#: keypoints per traced contour (20: endocardium; 40: endocardium, then epicardium)
CONTOUR_POINTS = 20
#: reach of :func:`snap_to_contours` in pixels of the 112x112 working grid: chosen on 20 phantom validation
#: cases (ED -> ES, KDM) among 2, 4 and 8 px, where 4 gave the best LV Dice (0.958) and PSNR (28.10 dB)
SNAP_SIGMA = 4.0
#: spacing in pixels of the points :func:`snap_to_contours` puts on each contour's base line
BASE_SPACING = 2 * SNAP_SIGMA


def warp(image: torch.Tensor | np.ndarray, ddf: torch.Tensor | np.ndarray, mode: str = "bilinear") -> torch.Tensor:
    """Pull ``image`` through ``ddf`` (MONAI ``Warp``): ``out(y, x) = image(y + ddf[0], x + ddf[1])``.

    Args:
        image: (B, C, H, W), (C, H, W) or (H, W).
        ddf: (B, 2, H, W) or (2, H, W) in pixels, channels (dy, dx).
        mode: ``bilinear`` for images, ``nearest`` for label maps.

    Returns:
        The warped image, float32, with the same number of dimensions as ``image``.
    """
    img = torch.as_tensor(image, dtype=torch.float32)
    u = torch.as_tensor(ddf, dtype=torch.float32)
    ndim = img.ndim
    img = img.reshape((1,) * (4 - ndim) + tuple(img.shape))
    if u.ndim == 3:
        u = u[None]
    if u.shape[0] != img.shape[0]:
        u = u.expand(img.shape[0], -1, -1, -1)
    out = _WARP[mode](img, u.to(img.device))
    return out.reshape(out.shape[4 - ndim :])


def keypoint_flow(
    src_kps: np.ndarray, tgt_kps: np.ndarray, shape: tuple[int, int], anchors: np.ndarray | None = None
) -> np.ndarray:
    """Dense pull displacement that moves ``src_kps`` onto ``tgt_kps`` (thin-plate spline).

    The spline maps each target-grid pixel to its source location, fitted on the keypoint pairs plus
    ``anchors`` that stay in place (default: the image corners and edge midpoints), so structures far
    from the keypoints do not move.

    Args:
        src_kps: (K, 2) keypoints (x, y) on the source frame.
        tgt_kps: (K, 2) the same keypoints on the target frame.
        shape: (H, W) of the grid.
        anchors: (A, 2) fixed points (x, y).

    Returns:
        (2, H, W) float32 pull DDF, channels (dy, dx).
    """
    src = np.asarray(src_kps, dtype=np.float64).reshape(-1, 2)
    tgt = np.asarray(tgt_kps, dtype=np.float64).reshape(-1, 2)
    if src.shape != tgt.shape or len(src) < 3:
        raise EchoKDMError(f"keypoint sets must match and hold at least 3 points, got {src.shape} and {tgt.shape}")
    h, w = shape
    if anchors is None:
        xs, ys = (0, (w - 1) / 2, w - 1), (0, (h - 1) / 2, h - 1)
        anchors = np.array([(x, y) for x in xs for y in ys if (x, y) != ((w - 1) / 2, (h - 1) / 2)])
    tgt_all = np.concatenate([tgt, anchors])
    src_all = np.concatenate([src, anchors])
    tps = ThinPlateSplineTransform.from_estimate(tgt_all, src_all)
    yy, xx = np.mgrid[0:h, 0:w]
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    mapped = tps(grid)
    ddf = np.stack([(mapped[:, 1] - grid[:, 1]).reshape(h, w), (mapped[:, 0] - grid[:, 0]).reshape(h, w)])
    return ddf.astype(np.float32)


def contour_normals(keypoints: np.ndarray) -> np.ndarray:
    """Unit normals (x, y) of the contours through ordered keypoints (each :data:`CONTOUR_POINTS` long).

    Args:
        keypoints: (K, 2) keypoints (x, y), K a multiple of :data:`CONTOUR_POINTS`.

    Returns:
        (K, 2) float64.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    tangent = np.concatenate([np.gradient(c, axis=0) for c in np.split(kps, len(kps) // CONTOUR_POINTS)])
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
    return np.stack([tangent[:, 1], -tangent[:, 0]], 1)


def snap_to_contours(
    flow: torch.Tensor, reference: torch.Tensor, keypoints: torch.Tensor, sigma: float = SNAP_SIGMA
) -> torch.Tensor:
    """Make ``flow`` carry the contours through ``keypoints`` exactly as ``reference`` does, across them.

    Keypoints are spaced evenly along each frame's contour, so keypoint i of two frames is not the same
    tissue: keypoints fix where a contour lies (its normal motion), not how tissue slides along it. This
    removes the normal component of ``flow - reference`` at each keypoint, spread around it by a Gaussian
    radial basis of width ``sigma``, and leaves the tangential motion and everything farther away alone.
    Two exceptions: a contour's two ends are the mitral annulus hinges, landmarks, so their whole motion is
    the reference's; and the base line between them (the valve plane, where no keypoint lies) moves across
    itself as the reference moves it, at points :data:`BASE_SPACING` apart. Without them the annulus kept
    part of the source's place and the predicted cavity reached below the target's base (real loops,
    ``docs/predict.md``, "The base line").

    Args:
        flow: (B, 2, H, W) pull flows onto the frames with ``keypoints``.
        reference: (B, 2, H, W) a flow that takes the keypoints where they must go (the keypoint flow).
        keypoints: (B, K, 2) keypoints (x, y) on the target grid.
        sigma: reach of the correction in pixels.

    Returns:
        (B, 2, H, W) corrected flows.
    """
    h, w = flow.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    points, directions = zip(*(_snap_points(k) for k in keypoints.detach().cpu().double().numpy()))
    pts = torch.from_numpy(np.stack(points))
    scale = torch.tensor([2 / (w - 1), 2 / (h - 1)], dtype=torch.float64)
    at_pts = torch.nn.functional.grid_sample(
        (flow - reference).detach().cpu().double(), (pts * scale - 1)[:, None], align_corners=True
    )[:, :, 0].numpy()  # (B, 2, P) as (dy, dx)
    corrections = []
    for p, n, d in zip(points, directions, at_pts):
        fixed = np.where(np.isnan(n), d.T, n * (d.T * np.nan_to_num(n)).sum(1, keepdims=True))
        rbf = RBFInterpolator(p, fixed, kernel="gaussian", epsilon=1 / sigma, degree=-1, smoothing=1e-3)
        corrections.append(rbf(grid).T.reshape(2, h, w))
    return flow - torch.from_numpy(np.stack(corrections)).to(flow)


def _snap_points(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`snap_to_contours` fixes the motion and along which direction ((dy, dx); NaN: the whole
    motion): each keypoint across its contour, the contour's two ends (the annulus hinges, landmarks) wholly,
    and points along the base line between them across that line."""
    normals = contour_normals(keypoints)[:, ::-1].copy()
    points, directions = [keypoints], [normals]
    for c in np.split(keypoints, len(keypoints) // CONTOUR_POINTS):
        first, last = c[0], c[-1]
        n_base = int(np.linalg.norm(last - first) // BASE_SPACING)
        t = np.arange(1, n_base + 1)[:, None] / (n_base + 1)
        along = (last - first) / (np.linalg.norm(last - first) + 1e-12)
        points.append(first + t * (last - first))
        directions.append(np.repeat([[-along[0], along[1]]], n_base, 0))  # the normal (ay, -ax) as (dy, dx)
    ends = np.concatenate([[i, i + CONTOUR_POINTS - 1] for i in range(0, len(keypoints), CONTOUR_POINTS)])
    directions[0][ends] = np.nan
    return np.concatenate(points), np.concatenate(directions)


def heart_region(keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool region the contours of ``keypoints`` enclose, each closed across the base: the LV cavity and,
    with 40 keypoints, its wall (see :data:`CONTOUR_POINTS`).

    Args:
        keypoints: (K, 2) keypoints (x, y), K a multiple of :data:`CONTOUR_POINTS`.
        shape: (H, W) of the grid.
    """
    region = np.zeros(shape, dtype=bool)
    for contour in np.asarray(keypoints, dtype=np.float64).reshape(-1, CONTOUR_POINTS, 2):
        rr, cc = polygon(contour[:, 1], contour[:, 0], shape)
        region[rr, cc] = True
    return region


def cavity_overlap(flow: torch.Tensor, source_keypoints: torch.Tensor, target_keypoints: torch.Tensor) -> np.ndarray:
    """How well pull flows put the LV cavity where the keypoints say: Dice of the source's cavity carried by each flow
    against the target's (the regions the first :data:`CONTOUR_POINTS` keypoints enclose, :func:`heart_region`).

    Args:
        flow: (B, 2, H, W) pull flows onto the frames with ``target_keypoints``.
        source_keypoints: (B, K, 2) keypoints (x, y) of the source frames on the flow's grid.
        target_keypoints: (B, K, 2) the same of the target frames.

    Returns:
        (B,) float64 Dice.
    """
    shape = tuple(flow.shape[-2:])

    def cavities(keypoints: torch.Tensor) -> np.ndarray:
        return np.stack([heart_region(k[:CONTOUR_POINTS], shape) for k in keypoints.detach().cpu().double().numpy()])

    source = torch.from_numpy(cavities(source_keypoints).astype(np.float32))[:, None]
    moved = warp(source, flow.detach().float().cpu())[:, 0].numpy() > 0.5
    target = cavities(target_keypoints)
    return 2 * (moved & target).sum((1, 2)) / np.maximum(moved.sum((1, 2)) + target.sum((1, 2)), 1)


def heart_fade(keypoints: torch.Tensor, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """(B, H, W) weights: 1 in the region the target contours enclose (:func:`heart_region`), exp(-d² / 2σ²) at d
    pixels outside it.

    Args:
        keypoints: (B, K, 2) keypoints (x, y) on the grid.
        shape: (H, W) of the grid.
        sigma: reach outside the heart in pixels.
    """
    weights = [np.exp(-0.5 * (distance_transform_edt(~heart_region(k, shape)) / sigma) ** 2)
               for k in keypoints.detach().cpu().numpy()]
    return torch.from_numpy(np.stack(weights)).to(keypoints.device)


def ventricle_side(keypoints: torch.Tensor, shape: tuple[int, int], width: float) -> torch.Tensor:
    """(B, H, W) weights: 1 on the apex side of each frame's base line (through the endocardium's two ends, the mitral
    annulus hinges) from ``width`` pixels on, 0 on the atrial side from ``width`` pixels beyond it, linear between.

    Args:
        keypoints: (B, K, 2) keypoints (x, y) on the grid, the endocardium's :data:`CONTOUR_POINTS` first.
        shape: (H, W) of the grid.
        width: half-width of the ramp in pixels.
    """
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    weights = []
    for k in keypoints.detach().cpu().double().numpy():
        endo = k[:CONTOUR_POINTS]
        base = (endo[0] + endo[-1]) / 2
        apex = endo.mean(0) - base
        apex /= np.linalg.norm(apex) + 1e-12
        towards_apex = (xx - base[0]) * apex[0] + (yy - base[1]) * apex[1]
        weights.append(np.clip(0.5 + towards_apex / (2 * width), 0.0, 1.0))
    return torch.from_numpy(np.stack(weights)).to(keypoints.device)


def confine_to_heart(flow: torch.Tensor, keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """Fade pull flows outside the heart of their target frames by :func:`heart_fade`.

    The keypoints say how the ventricle moves; a spline through them (and a K2F trained on the phantom's motion)
    carries that motion on into the tissue around the heart. On the two real loops that tissue moves less, and
    fading the flow raises SSIM and LV Dice there; on the phantom, whose tissue moves with the heart, it lowers
    them (model card, KDM section), so the shipped pipeline does not fade (``EchoKDMPipeline.heart_reach`` None).

    Args:
        flow: (B, 2, H, W) pull flows onto the frames with ``keypoints``.
        keypoints: (B, K, 2) keypoints (x, y) of those frames on the flow's grid.
        sigma: reach outside the heart in pixels.

    Returns:
        (B, 2, H, W) flows.
    """
    return flow * heart_fade(keypoints, tuple(flow.shape[-2:]), sigma)[:, None].to(flow)


def endpoint_error(
    pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, mask: np.ndarray | None = None
) -> float:
    """Mean end-point error ‖pred − true‖₂ in pixels over ``mask`` (all pixels when None).

    Args:
        pred: (2, H, W) or (B, 2, H, W) flow.
        true: same shape as ``pred``.
        mask: boolean (H, W) or (B, H, W) region.
    """
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    err = np.sqrt((diff**2).sum(axis=-3))
    if mask is None:
        return float(err.mean())
    m = np.broadcast_to(np.asarray(mask, dtype=bool), err.shape)
    return float(err[m].mean()) if m.any() else float("nan")


def flow_to_rgb(ddf: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a flow: hue = direction, brightness = magnitude.

    Args:
        ddf: (2, H, W) flow, channels (dy, dx).
        max_magnitude: magnitude shown at full brightness (default: the 99th percentile).

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    dy, dx = np.asarray(ddf, dtype=np.float64)
    mag = np.hypot(dx, dy)
    vmax = max_magnitude or max(float(np.percentile(mag, 99)), 1e-6)
    rgb = _hue_value_to_rgb((np.arctan2(dy, dx) / (2 * np.pi)) % 1.0, np.clip(mag / vmax, 0, 1))
    return (rgb * 255).round().astype(np.uint8)


#: per hue sector, which of (value, down, up, zero) is red, green and blue
_HSV_PICK = np.array([[0, 2, 3], [1, 0, 3], [3, 0, 2], [3, 1, 0], [2, 3, 0], [0, 3, 1]])


def _hue_value_to_rgb(hue: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] of fully saturated HSV colours (matplotlib's ``hsv_to_rgb`` at saturation 1)."""
    h6 = hue * 6.0
    sector = h6.astype(np.int64) % 6
    f = h6 - h6.astype(np.int64)
    choices = np.stack([value, value * (1.0 - f), value * f, np.zeros_like(value)], -1)  # value, down, up, zero
    return np.take_along_axis(choices, _HSV_PICK[sector], axis=-1)
