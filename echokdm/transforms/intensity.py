"""Ultrasound intensity augmentation that MONAI lacks: speckle, shadows, haze, structure echogenicity.

They act on a frame ``(1, H, W)`` in [0, 1] whose sector apex is at the top centre (the working grid of
:class:`echokdm.grid.SectorFit`). As in MONAI, each is an array transform that draws its random
field in ``randomize`` and applies it in ``__call__``, plus a thin ``...d`` dictionary transform that draws
once (from its first key's image) and applies the same field to every key. Both return a float32 tensor
(a ``MetaTensor`` while MONAI tracks metadata) whether or not the transform fired.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import get_track_meta
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor
from scipy.ndimage import gaussian_filter


def _as_image(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The float32 tensor every transform here returns (a ``MetaTensor`` while MONAI tracks metadata)."""
    return convert_to_tensor(img, dtype=torch.float32, track_meta=get_track_meta())


def _polar(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Angle from the vertical (radians) and depth (fraction of the height) of each pixel, apex at top centre."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.arctan2(x - (w - 1) / 2, y + 1.0), y / max(h - 1, 1)


def _smooth_positive(
    rng: np.random.RandomState, shape: tuple[int, int], sigma: float, spread: float = 0.7
) -> np.ndarray:
    """A smooth, strictly positive random field (log-normal: no dark zero-crossing lines), float32."""
    n = gaussian_filter(rng.standard_normal(shape), sigma)
    return np.exp(spread * n / (n.std() + 1e-8)).astype(np.float32)


class _RandIntensity(RandomizableTransform):
    """Base of the image-only transforms: ``randomize(img)`` draws whether to apply and the field for ``img``
    (1, H, W), ``apply(img)`` uses the field."""

    @abstractmethod
    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """``img`` (1, H, W) float32 with the drawn field applied."""

    def __call__(self, img: np.ndarray | torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Args: img (1, H, W) in [0, 1]; randomize: draw anew (else use the last draw). Returns: (1, H, W) float32."""
        img = _as_image(img)
        if randomize:
            self.randomize(img)
        return self.apply(img) if self._do_transform else img


class RandSpeckle(_RandIntensity):
    """Multiply by spatially correlated unit-mean noise (speckle of another texture and grain size).

    Args:
        prob: probability of applying.
        std: range of the noise's relative standard deviation.
        grain: range of the noise's correlation length (Gaussian sigma, pixels).
    """

    def __init__(
        self, prob: float = 0.1, std: tuple[float, float] = (0.1, 0.4), grain: tuple[float, float] = (0.5, 1.5)
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.std, self.grain = std, grain
        self.gain: np.ndarray | None = None

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply and the (H, W) gain field for ``img`` (1, H, W)."""
        super().randomize(None)
        if not self._do_transform:
            return
        std, grain = self.R.uniform(*self.std), self.R.uniform(*self.grain)
        noise = gaussian_filter(self.R.standard_normal(img.shape[-2:]), grain)
        self.gain = np.clip(1.0 + std * noise / (noise.std() + 1e-8), 0.0, None).astype(np.float32)

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """The speckled image, clipped to [0, 1]."""
        return (img * torch.as_tensor(self.gain, device=img.device)).clamp(0.0, 1.0)


class RandShadowBands(_RandIntensity):
    """Darken one or two angular bands from the apex down (rib or lung shadows, dropout of the lateral wall).

    Args:
        prob: probability of applying.
        strength: range of the attenuation inside a band (1 = black).
        width: range of a band's angular width (radians).
    """

    def __init__(
        self, prob: float = 0.1, strength: tuple[float, float] = (0.3, 0.9), width: tuple[float, float] = (0.05, 0.3)
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.strength, self.width = strength, width
        self.gain: np.ndarray | None = None

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply and the (H, W) gain field of the bands for ``img`` (1, H, W)."""
        super().randomize(None)
        if not self._do_transform:
            return
        angle, depth = _polar(tuple(img.shape[-2:]))
        gain = np.ones(angle.shape, np.float32)
        for _ in range(self.R.randint(1, 3)):
            centre, width = self.R.uniform(-0.7, 0.7), self.R.uniform(*self.width)
            start = self.R.uniform(0.0, 0.6)
            band = np.clip(1.0 - np.abs(angle - centre) / width, 0.0, 1.0) ** 0.5
            band *= np.clip((depth - start) / 0.1, 0.0, 1.0)
            gain *= 1.0 - self.R.uniform(*self.strength) * band
        self.gain = gain

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """The shadowed image."""
        return img * torch.as_tensor(self.gain, device=img.device)


class RandHaze(_RandIntensity):
    """Add smooth clutter that fades with depth (near-field haze, reverberation in the apical cavity).

    Args:
        prob: probability of applying.
        level: range of the haze brightness at the apex.
        reach: range of the depth (fraction of the height) over which it fades.
    """

    def __init__(
        self, prob: float = 0.1, level: tuple[float, float] = (0.05, 0.5), reach: tuple[float, float] = (0.15, 1.0)
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.level, self.reach = level, reach
        self.haze: np.ndarray | None = None

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply and the (H, W) haze for ``img`` (1, H, W)."""
        super().randomize(None)
        if not self._do_transform:
            return
        _, depth = _polar(tuple(img.shape[-2:]))
        field = _smooth_positive(self.R, depth.shape, self.R.uniform(2.0, 6.0))
        field /= field.max()
        haze = self.R.uniform(*self.level) * field * np.exp(-depth / self.R.uniform(*self.reach))
        self.haze = haze.astype(np.float32)

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """The hazy image, clipped to [0, 1]."""
        return (img + torch.as_tensor(self.haze, device=img.device)).clamp(0.0, 1.0)


class _RandLabelIntensity(RandomizableTransform):
    """Base of the transforms that also read the label map: ``randomize(img)`` draws, ``apply(img, lab)`` uses
    the draw with the (H, W) int64 labels."""

    @abstractmethod
    def apply(self, img: torch.Tensor, lab: np.ndarray) -> torch.Tensor:
        """``img`` (1, H, W) float32 with the drawn change applied, given its (H, W) labels ``lab``."""

    def __call__(
        self, img: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor, randomize: bool = True
    ) -> torch.Tensor:
        """Args: img (1, H, W) in [0, 1]; label (1, H, W) label map; randomize: draw anew. Returns: float32 image."""
        img = _as_image(img)
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        lab = np.asarray(label.detach().cpu() if torch.is_tensor(label) else label)[0].round().astype(np.int64)
        return self.apply(img, lab)


class RandTissueContrast(_RandLabelIntensity):
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

    def __init__(
        self, prob: float = 0.1, fill: tuple[float, float] = (0.0, 0.2), gain: tuple[float, float] = (0.6, 1.4)
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.fill, self.gain = fill, gain
        self.gains: np.ndarray | None = None
        self.clutter: np.ndarray | None = None

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply, the (7,) gain of each label and the (H, W) chamber clutter for ``img``."""
        super().randomize(None)
        if not self._do_transform:
            return
        self.gains = np.ones(7, np.float32)
        self.gains[[0, 2, 6]] = self.R.uniform(*self.gain, size=3)
        clutter = _smooth_positive(self.R, tuple(img.shape[-2:]), self.R.uniform(1.5, 5.0), spread=0.4)
        clutter *= self.R.uniform(*self.fill) / clutter.mean()
        self.clutter = clutter

    def apply(self, img: torch.Tensor, lab: np.ndarray) -> torch.Tensor:
        """The gains and clutter applied by the phantom labels ``lab`` (0-6)."""
        gain = gaussian_filter(self.gains[np.clip(lab, 0, 6)], 1.0)
        blood = gaussian_filter(np.isin(lab, self.BLOOD).astype(np.float32), 1.0)
        clutter = torch.as_tensor((blood * self.clutter).astype(np.float32), device=img.device)
        return (img * torch.as_tensor(gain, device=img.device) + clutter).clamp(0.0, 1.0)


class RandOpenValve(_RandLabelIntensity):
    """An open mitral valve: the bright LV-LA border of the phantom (a closed valve) replaced by blood.

    In real diastole the valve is open: the LV and the LA form one dark chamber whose only landmarks are the
    annulus hinges (and thin leaflets, :class:`RandMitralLeaflets`). The phantom always draws the closed valve
    as a bright line, so a segmenter trained on it ends the cavity at that line and, where the line is missing,
    lets the cavity run into the LA. This transform fills a band around the border, inside LV and LA, with grey
    levels drawn from the cavity's own pixels (lightly blurred to the speckle's grain), fading out where the
    band meets the walls (the annulus hinges keep part of their echo); the label map is not changed (the cavity
    ends at the annulus by convention).

    Args:
        prob: probability of applying.
        half_width: range of the band's half width (pixels) on each side of the border.
    """

    def __init__(self, prob: float = 0.1, half_width: tuple[float, float] = (4.0, 8.0)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.half_width = half_width
        self.draw: dict[str, float | int] = {}

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply, the band's half width and the seed of the fill."""
        super().randomize(None)
        if self._do_transform:
            self.draw = {"half_width": float(self.R.uniform(*self.half_width)), "seed": int(self.R.randint(2**31))}

    def apply(self, img: torch.Tensor, lab: np.ndarray) -> torch.Tensor:
        """``img`` with the band around the LV-LA border of ``lab`` (1 LV cavity, 3 LA) filled with blood."""
        from scipy.ndimage import binary_dilation, distance_transform_edt

        cavity, atrium = lab == 1, lab == 3
        border = (cavity & binary_dilation(atrium)) | (atrium & binary_dilation(cavity))
        if border.sum() < 2:
            return img
        distance = distance_transform_edt(~border)
        band = (distance <= self.draw["half_width"]) & (cavity | atrium)
        blood = cavity & (distance > 2 * self.draw["half_width"] + 2)
        if blood.sum() < 20:
            return img
        frame = img[0].cpu().numpy()
        rng = np.random.default_rng(self.draw["seed"])
        fill = gaussian_filter(rng.choice(frame[blood], size=frame.shape).astype(np.float32), 0.7)
        weight = gaussian_filter(band.astype(np.float32), 1.0) * (cavity | atrium)
        out = frame * (1 - weight) + fill * weight
        return torch.as_tensor(out.astype(np.float32), device=img.device)[None].clamp(0.0, 1.0)


class RandMitralLeaflets(_RandLabelIntensity):
    """Open mitral leaflets in the LV base, as real diastolic frames show them: two bright strips hinged at
    the ends of the LV-LA border (the annulus) and reaching into the cavity, the anterior (septal) one longer.

    The label map is not changed: the LV cavity closes at the annulus by convention (ASE), so the leaflets lie
    inside it, and a segmenter must not take them for the cavity's border. Needs the label map (1 LV cavity,
    3 LA); does nothing to a frame whose cavity and atrium do not touch.

    Args:
        prob: probability of applying.
        length: range of the leaflets' length as a fraction of the cavity's long axis.
        tilt_deg: range of each leaflet's angle from the long axis, toward the cavity's centre line.
        brightness: range of their echo as a fraction of the frame's 99th-percentile grey level.
    """

    def __init__(
        self,
        prob: float = 0.1,
        length: tuple[float, float] = (0.12, 0.3),
        tilt_deg: tuple[float, float] = (-10.0, 35.0),
        brightness: tuple[float, float] = (0.5, 1.1),
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.length, self.tilt_deg, self.brightness = length, tilt_deg, brightness
        self.draw: dict[str, np.ndarray | float | int] = {}

    def randomize(self, img: torch.Tensor) -> None:
        """Draw whether to apply, and each leaflet's length, tilt, width and the echo strength."""
        super().randomize(None)
        if self._do_transform:
            lengths = np.sort(self.R.uniform(*self.length, size=2))
            self.draw = {
                "lengths": lengths,
                "tilts": np.radians(self.R.uniform(*self.tilt_deg, size=2)),
                "width": int(self.R.randint(1, 3)),
                "brightness": float(self.R.uniform(*self.brightness)),
            }

    def apply(self, img: torch.Tensor, lab: np.ndarray) -> torch.Tensor:
        """The drawn leaflets at the annulus of ``lab`` (1 LV cavity, 3 LA)."""
        import cv2  # here, not at the top: the CLI imports this package and never draws leaflets
        from scipy.ndimage import binary_dilation

        cavity = lab == 1
        border = cavity & binary_dilation(lab == 3)
        if border.sum() < 2:
            return img
        by, bx = np.nonzero(border)
        hinges = np.array([[bx.min(), by[np.argmin(bx)]], [bx.max(), by[np.argmax(bx)]]], np.float64)
        base = hinges.mean(0)
        cy, cx = np.nonzero(cavity)
        far = np.hypot(cx - base[0], cy - base[1])
        axis = np.array([cx[np.argmax(far)], cy[np.argmax(far)]]) - base
        long_axis = float(np.hypot(*axis))
        axis /= max(long_axis, 1e-6)
        septal = 0 if self._septum_left(lab) else 1  # the anterior leaflet hinges on the septal side
        canvas = np.zeros(lab.shape, np.float32)
        for k, hinge in enumerate(hinges):
            toward_centre = 1.0 if k == 0 else -1.0  # rotate the left leaflet to the right, and vice versa
            a = self.draw["tilts"][k] * toward_centre
            d = np.array([axis[0] * np.cos(a) - axis[1] * np.sin(a), axis[0] * np.sin(a) + axis[1] * np.cos(a)])
            length = self.draw["lengths"][1 if k == septal else 0] * long_axis
            end = hinge + length * d
            cv2.line(canvas, tuple(int(round(v)) for v in hinge), tuple(int(round(v)) for v in end), 1.0,
                     int(self.draw["width"]), cv2.LINE_AA)
        canvas = gaussian_filter(canvas, 0.6) * binary_dilation(cavity, iterations=1)
        level = float(np.percentile(img[0].cpu().numpy(), 99)) * self.draw["brightness"]
        leaflets = torch.as_tensor(canvas * level, device=img.device)[None]
        return torch.maximum(img, leaflets).clamp(0.0, 1.0)

    @staticmethod
    def _septum_left(lab: np.ndarray) -> bool:
        """The septum is on the left when the LV cavity lies left of the RV (label 4), or without an RV."""
        rv = np.nonzero(lab == 4)[1]
        return rv.size == 0 or float(np.nonzero(lab == 1)[1].mean()) < float(rv.mean())


class _RandIntensityd(RandomizableTransform, MapTransform):
    """Dictionary version of ``array_class``: one draw, from the first key's image, applied to every key."""

    array_class: type[RandomizableTransform]

    def __init__(self, keys: KeysCollection, prob: float = 0.1, allow_missing_keys: bool = False, **kwargs) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = self.array_class(prob=1.0, **kwargs)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> _RandIntensityd:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        first = self.first_key(d)
        if self._do_transform and first != ():
            self.transform.randomize(d[first])
        for key in self.key_iterator(d):
            d[key] = self._apply(d, key) if self._do_transform else _as_image(d[key])
        return d

    def _apply(self, d: dict[Hashable, torch.Tensor], key: Hashable) -> torch.Tensor:
        return self.transform(d[key], randomize=False)


class RandSpeckled(_RandIntensityd):
    """Dictionary version of :class:`RandSpeckle`."""

    array_class = RandSpeckle


class RandShadowBandsd(_RandIntensityd):
    """Dictionary version of :class:`RandShadowBands`."""

    array_class = RandShadowBands


class RandHazed(_RandIntensityd):
    """Dictionary version of :class:`RandHaze`."""

    array_class = RandHaze


class _RandLabelIntensityd(_RandIntensityd):
    """Dictionary version of a transform that also reads the label map; ``label_key`` names it."""

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        prob: float = 0.1,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys, **kwargs)
        self.label_key = label_key

    def _apply(self, d: dict[Hashable, torch.Tensor], key: Hashable) -> torch.Tensor:
        return self.transform(d[key], d[self.label_key], randomize=False)


class RandTissueContrastd(_RandLabelIntensityd):
    """Dictionary version of :class:`RandTissueContrast`; ``label_key`` names the label map."""

    array_class = RandTissueContrast


class _ValveGatedd(_RandLabelIntensityd):
    """A label-reading transform that, with ``open_key`` given, leaves samples whose entry is false (valve
    closed: systole) alone."""

    def __init__(self, keys: KeysCollection, label_key: str = "label", open_key: str | None = None, **kwargs) -> None:
        super().__init__(keys, label_key, **kwargs)
        self.open_key = open_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        if self.open_key is None or bool(data[self.open_key]):
            return super().__call__(data)
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _as_image(d[key])
        return d


class RandOpenValved(_ValveGatedd):
    """Dictionary version of :class:`RandOpenValve`; ``label_key`` names the label map, ``open_key`` (optional)
    an entry that is false where the valve is closed (systole): such samples keep their image."""

    array_class = RandOpenValve


class RandMitralLeafletsd(_ValveGatedd):
    """Dictionary version of :class:`RandMitralLeaflets`; ``label_key`` names the label map, and ``open_key``, when
    given, an entry that is false where the valve is closed (systole): such samples keep their image."""

    array_class = RandMitralLeaflets


__all__ = [
    "RandHaze",
    "RandHazed",
    "RandMitralLeaflets",
    "RandMitralLeafletsd",
    "RandOpenValve",
    "RandOpenValved",
    "RandShadowBands",
    "RandShadowBandsd",
    "RandSpeckle",
    "RandSpeckled",
    "RandTissueContrast",
    "RandTissueContrastd",
]
