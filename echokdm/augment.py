"""Ultrasound-specific random transforms that MONAI lacks: speckle, acoustic shadows, near-field haze.

They act on a frame ``(1, H, W)`` in [0, 1] whose sector apex is at the top centre (the working grid of
:class:`echokdm.models.seg.SectorFit`). Each exists as an array transform and a thin ``...d`` dictionary
transform, seeded like MONAI's (``set_random_state``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from scipy.ndimage import gaussian_filter


def _polar(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Angle from the vertical (radians) and depth (fraction of the height) of each pixel, apex at top centre."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.arctan2(x - (w - 1) / 2, y + 1.0), y / max(h - 1, 1)


class RandSpeckle(RandomizableTransform):
    """Multiply by spatially correlated unit-mean noise (speckle of another texture and grain size).

    Args:
        prob: probability of applying.
        std: range of the noise's relative standard deviation.
        grain: range of the noise's correlation length (Gaussian sigma, pixels).
    """

    def __init__(self, prob: float = 0.1, std: tuple[float, float] = (0.1, 0.4), grain: tuple[float, float] = (0.5, 1.5)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.std, self.grain = std, grain

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Args: img (1, H, W). Returns: the speckled image, same type and shape, clipped to [0, 1]."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img
        std, grain = self.R.uniform(*self.std), self.R.uniform(*self.grain)
        noise = gaussian_filter(self.R.standard_normal(img.shape[-2:]), grain)
        gain = np.clip(1.0 + std * noise / (noise.std() + 1e-8), 0.0, None).astype(np.float32)
        return (img * torch.as_tensor(gain, device=img.device)).clamp(0.0, 1.0)


class RandShadowBands(RandomizableTransform):
    """Darken one or two angular bands from the apex down (rib or lung shadows, dropout of the lateral wall).

    Args:
        prob: probability of applying.
        strength: range of the attenuation inside a band (1 = black).
        width: range of a band's angular width (radians).
    """

    def __init__(self, prob: float = 0.1, strength: tuple[float, float] = (0.3, 0.9), width: tuple[float, float] = (0.05, 0.3)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.strength, self.width = strength, width

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Args: img (1, H, W). Returns: the shadowed image."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img
        angle, depth = _polar(tuple(img.shape[-2:]))
        gain = np.ones(angle.shape, np.float32)
        for _ in range(self.R.randint(1, 3)):
            centre, width = self.R.uniform(-0.7, 0.7), self.R.uniform(*self.width)
            start = self.R.uniform(0.0, 0.6)
            band = np.clip(1.0 - np.abs(angle - centre) / width, 0.0, 1.0) ** 0.5
            band *= np.clip((depth - start) / 0.1, 0.0, 1.0)
            gain *= 1.0 - self.R.uniform(*self.strength) * band
        return img * torch.as_tensor(gain, device=img.device)


class RandHaze(RandomizableTransform):
    """Add smooth clutter that fades with depth (near-field haze, reverberation in the apical cavity).

    Args:
        prob: probability of applying.
        level: range of the haze brightness at the apex.
        reach: range of the depth (fraction of the height) over which it fades.
    """

    def __init__(self, prob: float = 0.1, level: tuple[float, float] = (0.05, 0.5), reach: tuple[float, float] = (0.15, 1.0)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.level, self.reach = level, reach

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Args: img (1, H, W). Returns: the hazy image, clipped to [0, 1]."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img
        _, depth = _polar(tuple(img.shape[-2:]))
        field = np.abs(gaussian_filter(self.R.standard_normal(depth.shape), self.R.uniform(2.0, 6.0)))
        field /= field.max() + 1e-8
        haze = self.R.uniform(*self.level) * field * np.exp(-depth / self.R.uniform(*self.reach))
        return (img + torch.as_tensor(haze.astype(np.float32), device=img.device)).clamp(0.0, 1.0)


class _RandDict(RandomizableTransform, MapTransform):
    """Dictionary wrapper: one random draw applied to every key (a thin loop over the array transform)."""

    array_class: type[RandomizableTransform]

    def __init__(self, keys: KeysCollection, prob: float = 0.1, allow_missing_keys: bool = False, **kwargs) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = self.array_class(prob=1.0, **kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        state = self.transform.R.get_state()
        for key in self.key_iterator(d):
            self.transform.R.set_state(state)
            d[key] = self.transform(torch.as_tensor(d[key]))
        return d


class RandSpeckled(_RandDict):
    """Dictionary version of :class:`RandSpeckle`."""

    array_class = RandSpeckle


class RandShadowBandsd(_RandDict):
    """Dictionary version of :class:`RandShadowBands`."""

    array_class = RandShadowBands


class RandHazed(_RandDict):
    """Dictionary version of :class:`RandHaze`."""

    array_class = RandHaze
