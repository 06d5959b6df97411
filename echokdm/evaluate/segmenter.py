"""Segmenters that label predicted frames, so that their LV can be compared with the truth.

The harness accepts any :class:`echokdm.segmenter.Segmenter` (the call shape ``echokdm predict`` uses too). Two
come with echokdm: the built-in learned segmenter (:class:`~echokdm.segmenter.BuiltinSegmenter`), the default, and
:class:`AtlasSegmenter`, which propagates the source frame's labels to each frame by optical-flow registration (no
weights needed; it measures how the frame's content moved, so it favours predictions that keep the source's
speckle).
"""

from __future__ import annotations

import numpy as np
from skimage.registration import optical_flow_ilk

from echokdm.defaults import SEG_WEIGHTS
from echokdm.errors import InputError
from echokdm.flow import warp
from echokdm.segmenter import BuiltinSegmenter, Segmenter

SEGMENTERS = ("builtin", "atlas")


class AtlasSegmenter:
    """Labels each frame by registering it to a labelled atlas frame and pulling the atlas labels along the
    flow (iterative Lucas-Kanade, :func:`skimage.registration.optical_flow_ilk`, Gaussian window).

    The default window was chosen on 10 phantom validation pairs at 128x128 (ED->ES, oracle-warped ES
    frames): radius 2 gave LV Dice 0.977 and an EF bias of -1.9 points; radius 3, 5 and 7 gave 0.975 / 0.965 /
    0.948 and -2.4 / -4.8 / -8.6; TV-L1 (attachment 30-100) 0.966-0.970 and -5.1 to -4.3. Larger windows
    smooth the flow and underestimate wall motion.

    Args:
        radius: half-size of the Gaussian window in pixels.
    """

    def __init__(self, radius: int = 2) -> None:
        self.radius = radius

    def __call__(
        self,
        frames: np.ndarray,
        *,
        sector_mask: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        atlas: tuple[np.ndarray, np.ndarray] | None = None,
        frame_time_ms: float | None = None,
    ) -> np.ndarray:
        if atlas is None:
            raise InputError("the atlas segmenter needs a labelled atlas frame")
        image, labels = atlas
        out = np.empty(frames.shape, dtype=np.uint8)
        for i, frame in enumerate(frames):
            if np.array_equal(frame, image):
                out[i] = labels
                continue
            flow = np.stack(optical_flow_ilk(frame, image, radius=self.radius, gaussian=True))  # pull, (dy, dx)
            out[i] = warp(labels, flow, mode="nearest").numpy()
        return out


def load_segmenter(name: str = "builtin", device: str = "cpu", weights: str = SEG_WEIGHTS) -> Segmenter:
    """The segmenter called ``name`` (one of :data:`SEGMENTERS`); the built-in one with ``weights`` (a shipped
    name, a ``.safetensors`` file or a training run's folder) on ``device``.

    Raises:
        InputError: unknown name, or the built-in segmenter's weights are missing or damaged.
    """
    if name == "atlas":
        return AtlasSegmenter()
    if name != "builtin":
        raise InputError(f"unknown segmenter {name!r}; expected one of {', '.join(SEGMENTERS)}")
    return BuiltinSegmenter(weights=weights, device=device)
