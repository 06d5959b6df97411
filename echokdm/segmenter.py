"""The one call shape of a segmenter, for ``echokdm predict`` and the evaluation harness alike.

A :class:`Segmenter` labels frames with CAMUS labels (:mod:`echokdm.labels`); :class:`BuiltinSegmenter` puts the
learned segmenter (:class:`echokdm.models.seg.LVSegmenter`) behind it, and the harness adds an atlas segmenter
(:class:`echokdm.evaluate.segmenter.AtlasSegmenter`).
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from echokdm.defaults import SEG_WEIGHTS


class Segmenter(Protocol):
    """Labels frames with CAMUS labels (0 background, 1 LV cavity, 2 LV myocardium, 3 LA)."""

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
        frame_time_ms: float | None = None,
    ) -> np.ndarray:
        """(N, H, W) float32 frames in [0, 1] (consecutive when N > 1) -> (N, H, W) uint8 label maps.

        ``sector_mask`` is the (H, W) bool fan, ``spacing_mm`` the (dy, dx) pixel spacing or None; ``atlas`` a
        labelled frame of the same loop, (image (H, W), labels (H, W)); ``frame_time_ms`` the time between
        consecutive frames or None. Segmenters may ignore the last three.
        """


class BuiltinSegmenter:
    """The learned segmenter (:class:`echokdm.models.seg.LVSegmenter`) as a :class:`Segmenter`.

    Args:
        model: a ready segmenter; default: built from ``weights``.
        weights: shipped weights name or a ``.safetensors`` path, used when ``model`` is None.
        device: where a model built from ``weights`` runs.

    Raises:
        InputError: the weights are missing or damaged.
    """

    def __init__(self, model=None, weights: str | os.PathLike = SEG_WEIGHTS, device: str = "cpu") -> None:
        from echokdm.models.seg import LVSegmenter

        self.model = model if model is not None else LVSegmenter.from_pretrained(weights, device=device)

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
        frame_time_ms: float | None = None,
    ) -> np.ndarray:
        out = self.model(np.asarray(frames, dtype=np.float32), sector_mask=sector_mask, frame_time_ms=frame_time_ms)
        return out.labels
