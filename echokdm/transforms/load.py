"""MONAI transforms that load cine loops (any format :func:`echokdm.io.load_cine` reads)."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from echokdm.io.load import load_cine


class LoadCineLoop(Transform):
    """Load a cine loop file as a (1, T, H, W) float32 ``MetaTensor`` in [0, 1].

    The meta holds frame count, frame time (ms) and its source, frame rate, heart rate, spacing (dy, dx)
    in mm with its source and any warning, the sector mask and box, equipment, transfer syntax,
    photometric interpretation, original shape and study/series UIDs; never patient fields. The affine is
    diag(1, dy, dx, 1) (MONAI convention), so MONAI spatial transforms (``Resize``, ``Spacing``...) keep the
    spacing right: read it with :func:`echokdm.io.loop_spacing` (``meta["spacing_mm"]`` is the file's).

    Args:
        blank_outside_sector: set pixels outside the imaging sector (text, ECG, UI) to 0.
    """

    def __init__(self, blank_outside_sector: bool = True) -> None:
        self.blank_outside_sector = blank_outside_sector

    def __call__(self, filename: str | os.PathLike) -> MetaTensor:
        """Args:
            filename: DICOM, NIfTI/MHD, AVI, PNG/JPEG file or folder of frames.

        Returns:
            (1, T, H, W) float32 ``MetaTensor``.

        Raises:
            echokdm.errors.InputError, echokdm.errors.UnsupportedError: unreadable or unsupported input.
        """
        return load_cine(filename, blank_outside_sector=self.blank_outside_sector)


class LoadCineLoopd(MapTransform):
    """Dictionary version of :class:`LoadCineLoop`: replaces each key's path by the loaded loop.

    Args:
        keys: keys holding file paths.
        blank_outside_sector: see :class:`LoadCineLoop`.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(
        self, keys: KeysCollection, blank_outside_sector: bool = True, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCineLoop(blank_outside_sector)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
