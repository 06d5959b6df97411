"""Predictors compared by the evaluation harness, behind one small interface and a registry by name.

A predictor turns a :class:`~echokdm.evaluate.tasks.Sample` into the predicted target frames. Adding one is
a small subclass of :class:`Predictor` plus one line in :data:`PREDICTORS` (``"name": "module:Class"``;
modules are imported only when the predictor is used).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from skimage.measure import find_contours

from echokdm.errors import InputError
from echokdm.evaluate.tasks import Sample
from echokdm.flow import keypoint_flow, warp

#: predictor name -> "module:Class"
PREDICTORS: dict[str, str] = {
    "copy": "echokdm.evaluate.predictors:CopyPredictor",
    "tps": "echokdm.evaluate.predictors:TPSPredictor",
    "oracle": "echokdm.evaluate.predictors:OraclePredictor",
    "truth": "echokdm.evaluate.predictors:TruthPredictor",
    "kdm": "echokdm.evaluate.kdm:KDMModel",
    "kdm-adapt": "echokdm.evaluate.kdm:KDMAdaptModel",
    "kdm-heart": "echokdm.evaluate.kdm:KDMHeartModel",
    "k2f-warp": "echokdm.evaluate.kdm:K2FWarpModel",
    "kdm-local": "echokdm.evaluate.kdm:KDMLocalModel",
    "kdm-guard": "echokdm.evaluate.kdm:KDMGuardModel",
    "k2i": "echokdm.evaluate.kdm:K2IModel",
}


class Predictor(ABC):
    """Predicts target frames from a sample.

    Class attributes:
        kind: ``"baseline"`` (what a model must beat), ``"ceiling"`` (uses ground truth a model cannot see)
            or ``"model"``.
        requires: names of optional :class:`Sample` fields the predictor needs (e.g. ``{"ddf"}``); samples
            without them are skipped for this predictor.
    """

    kind: ClassVar[str] = "baseline"
    requires: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_option(cls, option: str, **kwargs) -> Predictor:
        """The predictor named ``NAME:OPTION`` (e.g. ``kdm-adapt:30``); by default predictors take no option."""
        raise InputError(f"predictor {cls.__name__} takes no ':' option, got {option!r}")

    def to(self, device: torch.device) -> Predictor:
        """Run on ``device`` from now on (baselines compute with numpy and ignore it); returns ``self``."""
        return self

    def applicable(self, sample: Sample) -> bool:
        """Whether ``sample`` carries everything this predictor needs."""
        return all(getattr(sample, name) is not None for name in self.requires)

    @abstractmethod
    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        """Predict the targets of ``sample``.

        Args:
            sample: the problem.
            generator: seeded random generator for stochastic predictors.

        Returns:
            (N, H, W) float32 in [0, 1], one frame per target keypoint set.
        """


class CopyPredictor(Predictor):
    """The source frame, unchanged, for every target (the no-motion baseline)."""

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        n = sample.target_keypoints.shape[0]
        return np.repeat(sample.source[None].astype(np.float32), n, axis=0)


def sector_anchors(sector_mask: np.ndarray, n: int) -> np.ndarray:
    """``n`` points (x, y) equally spaced by arc length along the outline of the sector, starting at its
    top-most point (the fan apex).

    Args:
        sector_mask: (H, W) bool.
        n: number of points.

    Returns:
        (n, 2) float64.
    """
    padded = np.pad(sector_mask.astype(np.float32), 1)
    contour = max(find_contours(padded, 0.5), key=len)[:, ::-1] - 1.0  # (x, y)
    if not np.allclose(contour[0], contour[-1]):
        contour = np.vstack([contour, contour[:1]])
    start = int(np.argmin(contour[:-1, 1]))
    contour = np.vstack([np.roll(contour[:-1], -start, axis=0), contour[start:start + 1]])
    seg = np.linalg.norm(np.diff(contour, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0.0, arc[-1], n, endpoint=False)
    return np.stack([np.interp(s, arc, contour[:, 0]), np.interp(s, arc, contour[:, 1])], axis=1)


class TPSPredictor(Predictor):
    """Thin-plate-spline warp of the source, driven by the source -> target keypoints.

    Points along the sector outline are added as fixed anchors (same place in source and target), so the
    warp stays local to the heart and the fan border does not move; outside the sector the source is kept
    as it is (burned-in text, ECG). Without the anchors a TPS
    extrapolates the LV's motion over the whole image and scores below ``copy`` on PSNR/SSIM; on 30 phantom
    validation pairs at 128x128 (ED->ES and ES->ED), SSIM in the sector was 0.371 with 40 keypoints alone,
    0.429 with image-corner anchors, 0.488 / 0.498 / 0.501 with 8 / 16 / 32 sector anchors, and 0.473 with
    20 keypoints + 32 anchors (copy 0.449, oracle 0.690); hence all given keypoints (40 by default) + 32.

    Args:
        n_anchors: fixed points on the sector outline (0 for none).
    """

    def __init__(self, n_anchors: int = 32) -> None:
        self.n_anchors = n_anchors

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        anchors = sector_anchors(sample.sector_mask, self.n_anchors) if self.n_anchors else np.zeros((0, 2))
        shape = sample.source.shape
        ddf = np.stack(
            [keypoint_flow(sample.source_keypoints, tk, shape, anchors=anchors) for tk in sample.target_keypoints]
        )
        return np.where(sample.sector_mask, _warp_source(sample.source, ddf), sample.source).astype(np.float32)


class OraclePredictor(Predictor):
    """The source warped by the exact phantom displacement: the ceiling of any pure warping method."""

    kind = "ceiling"
    requires = frozenset({"ddf"})

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        return _warp_source(sample.source, sample.ddf)


class TruthPredictor(Predictor):
    """The true target frames themselves: what the instrument gives a perfect prediction (e.g. the EF error
    that the segmenter of predictions alone causes)."""

    kind = "ceiling"
    requires = frozenset({"targets"})

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> np.ndarray:
        return sample.targets.astype(np.float32)


@torch.no_grad()
def _warp_source(source: np.ndarray, ddf: np.ndarray) -> np.ndarray:
    """(H, W) source pulled through each of (N, 2, H, W) fields -> (N, H, W) float32 in [0, 1]."""
    images = np.repeat(source.astype(np.float32)[None, None], ddf.shape[0], axis=0)
    return warp(images, ddf)[:, 0].clamp(0.0, 1.0).numpy()


def get_predictor(name: str, **kwargs) -> Predictor:
    """Instantiate the predictor registered as ``name``, or as ``NAME`` of ``NAME:OPTION`` (e.g. ``kdm-adapt:30``,
    :meth:`Predictor.from_option`).

    Raises:
        InputError: no predictor of that name, or an option it does not take.
    """
    _, colon, option = name.partition(":")
    predictor = predictor_class(name)
    return predictor.from_option(option, **kwargs) if colon else predictor(**kwargs)


def predictor_class(name: str) -> type[Predictor]:
    """The class registered as ``name`` (or ``NAME`` of ``NAME:OPTION``).

    Raises:
        InputError: no predictor of that name.
    """
    base = name.partition(":")[0]
    if base not in PREDICTORS:
        raise InputError(f"unknown predictor {base!r}; expected one of {', '.join(sorted(PREDICTORS))}")
    module, cls = PREDICTORS[base].split(":")
    return getattr(importlib.import_module(module), cls)
