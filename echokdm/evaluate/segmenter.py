"""Segmenters that label predicted frames, so that their LV can be compared with the truth.

The harness accepts any object following :class:`Segmenter`. Two come with echokdm: the built-in learned
segmenter (``echokdm.models.seg``), the default, and :class:`AtlasSegmenter`, which propagates the source
frame's labels to each frame by optical-flow registration (no weights needed; it measures how the frame's
content moved, so it favours predictions that keep the source's speckle).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from skimage.registration import optical_flow_tvl1
from skimage.transform import warp

from echokdm.errors import InputError

SEGMENTERS = ("builtin", "atlas")


class Segmenter(Protocol):
    """Labels frames with CAMUS labels (0 background, 1 LV cavity, 2 LV myocardium, 3 LA)."""

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(N, H, W) float32 frames (consecutive when N > 1) -> (N, H, W) uint8 label maps.

        ``sector_mask`` is the (H, W) bool fan; ``atlas`` a labelled frame of the same loop, (image (H, W),
        labels (H, W)), which segmenters may ignore.
        """


class AtlasSegmenter:
    """Labels each frame by registering it to a labelled atlas frame (TV-L1 optical flow) and pulling the
    atlas labels along the flow.

    Args:
        attachment: TV-L1 data-attachment weight (higher follows intensities more closely).
    """

    def __init__(self, attachment: float = 30.0) -> None:
        self.attachment = attachment

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        if atlas is None:
            raise InputError("the atlas segmenter needs a labelled atlas frame")
        image, labels = atlas
        h, w = image.shape
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out = np.empty(frames.shape, dtype=np.uint8)
        for i, frame in enumerate(frames):
            if np.array_equal(frame, image):
                out[i] = labels
                continue
            v, u = optical_flow_tvl1(frame, image, attachment=self.attachment)
            out[i] = warp(labels, np.array([rows + v, cols + u]), order=0, mode="edge", preserve_range=True)
        return out


class BuiltinSegmenter:
    """The shipped learned segmenter (:class:`echokdm.models.seg.LVSegmenter`) behind the harness protocol.

    Args:
        weights: shipped weights name or a ``.safetensors`` path.
    """

    def __init__(self, weights: str | None = None) -> None:
        from echokdm.models.seg import DEFAULT_WEIGHTS, LVSegmenter

        self.model = LVSegmenter.from_pretrained(weights or DEFAULT_WEIGHTS)

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        return self.model(np.asarray(frames, dtype=np.float32), sector_mask=sector_mask).labels


def load_segmenter(name: str = "builtin") -> Segmenter:
    """The segmenter called ``name`` (one of :data:`SEGMENTERS`).

    Raises:
        InputError: unknown name, or the built-in segmenter's weights are missing or damaged.
    """
    if name == "atlas":
        return AtlasSegmenter()
    if name != "builtin":
        raise InputError(f"unknown segmenter {name!r}; expected one of {', '.join(SEGMENTERS)}")
    return BuiltinSegmenter()
