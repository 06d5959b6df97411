"""Echo-like frames synthesised from label maps (domain randomisation in the manner of SynthSeg).

SynthSeg (Billot et al., Medical Image Analysis 2023) trains segmenters that work on scans of any contrast by
drawing every structure's intensity at random from its label map. Here the same idea is made for ultrasound:
per-structure echogenicity (echo-like ordering or fully random), smooth within-structure variation, partial
volume blur, speckle whose grain follows the beam (short along the range, wider across it and with depth),
bright pericardium, papillary muscles and trabeculae inside the cavity (traced as cavity), depth attenuation,
time-gain errors and log compression. A network that must segment all of these learns the structures' shapes
and borders rather than one simulator's texture.

Labels are the phantom's: 0 outside the heart, 1 LV cavity, 2 LV myocardium, 3 LA, 4 RV, 5 RA, 6 other heart
tissue; frames are ``(1, H, W)`` in [0, 1] with the fan apex at the top centre of the sector mask.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import cv2
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from scipy import ndimage

from echokdm.transforms.acquisition import fan_apex

BLOOD = (1, 3, 4, 5)
N_LABELS = 7


def _smooth(rng: np.random.RandomState, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field."""
    f = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return f / (f.std() + 1e-6)


def beam_speckle(rng: np.random.RandomState, mask: np.ndarray, axial: float, lateral: float) -> np.ndarray:
    """Fully developed speckle (Rayleigh envelope, mean 1) on a polar grid around the fan apex, scan converted.

    Args:
        rng: random state.
        mask: (H, W) bool sector mask.
        axial: grain along the beam (Gaussian sigma, pixels).
        lateral: grain across the beam at the bottom of the image (pixels); it narrows towards the apex.

    Returns:
        (H, W) float32.
    """
    h, w = mask.shape
    ar, ac = fan_apex(mask)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(y - ar + 1.0, x - ac)
    t = np.arctan2(x - ac, y - ar + 1.0)
    n_r = int(r.max()) + 2
    dtheta = lateral / max(h, w)  # angular cell: ``lateral`` pixels wide at the image's far edge
    n_t = int(np.pi / dtheta) + 2
    z = rng.standard_normal((n_r, n_t, 2)).astype(np.float32)
    z = cv2.GaussianBlur(z, (0, 0), sigmaX=1.0, sigmaY=max(axial, 0.3))
    env = np.hypot(z[..., 0], z[..., 1])
    env /= env.mean() + 1e-6
    map_r, map_t = r.astype(np.float32), ((t + np.pi / 2) / dtheta).astype(np.float32)
    return cv2.remap(env, map_t, map_r, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class RandEchoSynthesis(RandomizableTransform):
    """Replace a frame by an echo-like image drawn from its label map.

    Args:
        prob: probability of applying (otherwise the frame is returned unchanged).
        random_contrast_prob: probability that every structure's level is drawn independently (any contrast);
            otherwise blood is darker than tissue, as in echo.
        extras_prob: probability of each extra structure (pericardium, papillary muscles/trabeculae).
    """

    def __init__(self, prob: float = 0.5, random_contrast_prob: float = 0.2, extras_prob: float = 0.5) -> None:
        RandomizableTransform.__init__(self, prob)
        self.random_contrast_prob, self.extras_prob = random_contrast_prob, extras_prob

    def _levels(self) -> np.ndarray:
        R = self.R
        if R.uniform() < self.random_contrast_prob:
            return R.uniform(0.0, 1.0, N_LABELS).astype(np.float32)
        lv = np.empty(N_LABELS, np.float32)
        blood = R.uniform(0.0, 0.2)
        lv[list(BLOOD)] = np.clip(blood + R.uniform(-0.05, 0.08, 4), 0, 1)
        lv[2] = R.uniform(blood + 0.15, 0.9)
        lv[6] = np.clip(lv[2] + R.uniform(-0.2, 0.3), 0.05, 1.0)
        lv[0] = 0.7 * R.uniform() ** 2  # around the heart: mostly dark (lung, fluid), sometimes bright tissue
        return lv

    def __call__(
        self, img: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, randomize: bool = True
    ) -> torch.Tensor:
        """Args: img, label, mask (1, H, W). Returns: (1, H, W) float32 tensor in [0, 1]."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return torch.as_tensor(img, dtype=torch.float32).clone()
        R = self.R
        lab = np.clip(np.asarray(torch.as_tensor(label)[0].round().to(torch.int64)), 0, N_LABELS - 1)
        fan = np.asarray(torch.as_tensor(mask)[0]) > 0.5
        h, w = lab.shape
        base = self._levels()[lab]
        base *= np.exp(R.uniform(0.05, 0.35) * _smooth(R, (h, w), R.uniform(2.0, 10.0)))  # within-structure variation
        heart = np.isin(lab, (1, 2))
        if R.uniform() < self.extras_prob:  # pericardium: a bright band outside the LV's epicardium
            ring = ndimage.binary_dilation(heart, iterations=int(R.randint(2, 6))) & (lab == 0)
            base[ring] = np.maximum(base[ring], R.uniform(0.5, 1.0))
        if R.uniform() < self.extras_prob:  # papillary muscles / trabeculae: bright blobs inside the cavity
            cavity = lab == 1
            edge = cavity & ~ndimage.binary_erosion(cavity, iterations=3)
            ys, xs = np.nonzero(edge)
            for _ in range(int(R.randint(1, 5)) if ys.size else 0):
                k = R.randint(ys.size)
                rr = R.uniform(1.5, 4.0) * max(h, w) / 128
                blob = ((np.arange(h)[:, None] - ys[k]) ** 2 + (np.arange(w)[None] - xs[k]) ** 2) < rr**2
                base[blob & cavity] = np.maximum(base[blob & cavity], R.uniform(0.3, 0.9))
        base = cv2.GaussianBlur(base.astype(np.float32), (0, 0), R.uniform(0.5, 2.0) * max(h, w) / 128)
        speckle = beam_speckle(R, fan, R.uniform(0.4, 1.5) * max(h, w) / 128, R.uniform(1.5, 5.0) * max(h, w) / 128)
        log_speckle = np.log(speckle + 1e-3)
        log_speckle = (log_speckle - log_speckle.mean()) / (log_speckle.std() + 1e-6)
        # display domain (after log compression): speckle adds, more on brighter tissue
        out = base + R.uniform(0.06, 0.22) * log_speckle * (0.25 + base)
        depth = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        out += R.uniform(-0.25, 0.1) * depth + R.uniform(0.0, 0.12) * _smooth(
            R, (h, w), max(h, w) / 5
        )  # TGC, gain field
        out += (
            R.uniform(0.0, 0.35) * np.exp(-depth / R.uniform(0.05, 0.3)) * np.abs(_smooth(R, (h, w), 3.0))
        )  # near-field haze
        out = np.clip(out, 0, 1) ** R.uniform(0.7, 1.5)
        out[~fan] = 0.0
        return torch.from_numpy(out[None].astype(np.float32))


class RandEchoSynthesisd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandEchoSynthesis`.

    Args:
        keys: the frame key(s) to replace.
        label_key: the label map (phantom labels 0-6).
        mask_key: the sector mask.
        prob: probability of applying.
        allow_missing_keys: do not fail on missing keys.
        kwargs: :class:`RandEchoSynthesis` arguments.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        mask_key: str = "mask",
        prob: float = 0.5,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.synth = RandEchoSynthesis(prob=1.0, **kwargs)
        self.label_key, self.mask_key = label_key, mask_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.synth.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = self.synth(d[key], d[self.label_key], d[self.mask_key])
        return d
