"""The renderer interface: how :func:`echokdm.phantom.simulate` asks an image-formation model for a frame.

A renderer is built once per loop from the parameters, the reference anatomy, the deformation and a
random generator, and exposes the :class:`~echokdm.phantom.fan.Fan` it draws into. The simulation then
hands it one :class:`FrameState` per frame, in order, and gets a grey image back. Labels and
displacement fields never pass through a renderer, so every renderer shows the same ground truth.

Renderers (``PhantomParams.renderer``): ``scatter`` (:mod:`echokdm.phantom.render_scatter`, the
original beam-grid scatterer splat) and ``cole`` (:mod:`echokdm.phantom.render_cole`, an RF-line
convolution simulator after Gao et al. 2009).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from echokdm.phantom.anatomy import Anatomy
from echokdm.phantom.fan import Fan
from echokdm.phantom.motion import Deformation
from echokdm.phantom.params import PhantomParams


@dataclass(frozen=True)
class FrameState:
    """The heart at one frame.

    Attributes:
        index: frame number (0 first; frames come in order).
        c, e: contraction and atrial filling of the :class:`~echokdm.phantom.motion.Deformation`.
        o_mv, o_tv: mitral and tricuspid valve opening in [0, 1].
        hinges: (4, 2) current heart-frame (u, v) of the mitral and tricuspid hinge points.
        labels: (H, W) uint8 label map of this frame (renderers may calibrate on it, never draw it).
        rng: this frame's random generator (flowing blood, receiver noise).
    """

    index: int
    c: float
    e: float
    o_mv: float
    o_tv: float
    hinges: np.ndarray
    labels: np.ndarray
    rng: np.random.Generator


class Renderer(Protocol):
    """An image-formation model: ``Renderer(p, anatomy, deform, rng)``, then ``frame(state)`` per frame."""

    fan: Fan

    def __init__(self, p: PhantomParams, anatomy: Anatomy, deform: Deformation, rng: np.random.Generator) -> None: ...

    def frame(self, state: FrameState) -> np.ndarray:
        """(H, W) float32 grey image in [0, 1], zero outside ``fan.sector_mask``."""
        ...
