"""Ultrasound-specific random transforms that MONAI lacks: speckle, shadows, haze, structure echogenicity.

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


def _smooth_positive(rng: np.random.RandomState, shape: tuple[int, int], sigma: float, spread: float = 0.7) -> np.ndarray:
    """A smooth, strictly positive random field (log-normal: no dark zero-crossing lines), float32."""
    n = gaussian_filter(rng.standard_normal(shape), sigma)
    return np.exp(spread * n / (n.std() + 1e-8)).astype(np.float32)


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
        field = _smooth_positive(self.R, depth.shape, self.R.uniform(2.0, 6.0))
        field /= field.max()
        haze = self.R.uniform(*self.level) * field * np.exp(-depth / self.R.uniform(*self.reach))
        return (img + torch.as_tensor(haze.astype(np.float32), device=img.device)).clamp(0.0, 1.0)


class RandTissueContrast(RandomizableTransform):
    """Randomise the echogenicity of each kind of structure, given the phantom's label map.

    Real blood pools are rarely black (clutter, haze, harmonics) and the myocardium is not always brighter
    than its surroundings. All four chambers (LV, LA, RV, RA: labels 1, 3, 4, 5) get the same smooth grey
    clutter, so fill brightness cannot tell them apart; myocardium (2), other tissue (6) and background
    (0) are scaled by independent gains. The gain/offset maps are blurred so no new edges appear.

    Args:
        prob: probability of applying.
        fill: range of the mean clutter level added to the chambers.
        gain: range of each tissue class's gain.
    """

    BLOOD = (1, 3, 4, 5)

    def __init__(self, prob: float = 0.1, fill: tuple[float, float] = (0.0, 0.2), gain: tuple[float, float] = (0.6, 1.4)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.fill, self.gain = fill, gain

    def __call__(self, img: torch.Tensor, label: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Args: img (1, H, W) in [0, 1]; label (1, H, W) phantom labels 0-6. Returns: the new image."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img
        lab = np.asarray(label, dtype=np.int64)[0] if not torch.is_tensor(label) else label[0].long().cpu().numpy()
        gains = np.ones(7, np.float32)
        gains[[0, 2, 6]] = self.R.uniform(*self.gain, size=3)
        gain = gaussian_filter(gains[np.clip(lab, 0, 6)], 1.0)
        blood = gaussian_filter(np.isin(lab, self.BLOOD).astype(np.float32), 1.0)
        clutter = _smooth_positive(self.R, lab.shape, self.R.uniform(1.5, 5.0), spread=0.4)
        clutter *= self.R.uniform(*self.fill) / clutter.mean()
        out = img * torch.as_tensor(gain, device=img.device) + torch.as_tensor((blood * clutter).astype(np.float32), device=img.device)
        return out.clamp(0.0, 1.0)


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
            d[key] = self._apply(d, key)
        return d

    def _apply(self, d: dict[Hashable, torch.Tensor], key: Hashable) -> torch.Tensor:
        return self.transform(torch.as_tensor(d[key]))


class RandTissueContrastd(_RandDict):
    """Dictionary version of :class:`RandTissueContrast`; ``label_key`` names the label map."""

    array_class = RandTissueContrast

    def __init__(self, keys: KeysCollection, label_key: str = "label", prob: float = 0.1, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, prob, allow_missing_keys, **kwargs)
        self.label_key = label_key

    def _apply(self, d: dict[Hashable, torch.Tensor], key: Hashable) -> torch.Tensor:
        return self.transform(torch.as_tensor(d[key]), d[self.label_key])


class RandSpeckled(_RandDict):
    """Dictionary version of :class:`RandSpeckle`."""

    array_class = RandSpeckle


class RandShadowBandsd(_RandDict):
    """Dictionary version of :class:`RandShadowBands`."""

    array_class = RandShadowBands


class RandHazed(_RandDict):
    """Dictionary version of :class:`RandHaze`."""

    array_class = RandHaze
