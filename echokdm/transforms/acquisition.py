"""How a scanner and a data set show the fan: field of view (zoom, crop, canvas size) and lossy video coding.

Real A4C studies reach echokdm zoomed and cropped (EchoNet-Dynamic crops every video to a 112 px square in
which the fan's sides and bottom are cut and the LV may touch the edge), at 112 to 800 px, and through MJPEG
or H.264. These transforms make training frames that span that range. They act on ``(C, H, W)`` frames in
[0, 1] whose fan apex is the top centre of the sector mask, like MONAI's spatial and intensity transforms:
an array transform that does the work and a thin dictionary transform that applies one random draw to
several keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import cv2
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

#: canvas sides of the field-of-view transform (pixels): EchoNet's 112 up to a full-resolution study
CANVAS_SIDES = (112, 128, 160, 208, 256)


def _as_numpy(img: torch.Tensor | np.ndarray) -> np.ndarray:
    return img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)


def fan_apex(mask: np.ndarray) -> tuple[float, float]:
    """(row, col) of the fan's apex: the centre of the sector mask's top row.

    Args:
        mask: (H, W) bool sector mask.
    """
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        h, w = mask.shape
        return 0.0, (w - 1) / 2.0
    top = rows[0]
    cols = np.flatnonzero(mask[top])
    return float(top), float(cols.mean())


class RandFieldOfView(RandomizableTransform):
    """Show the fan as another scanner or data set would: zoomed around its apex, shifted, cropped to a square.

    ``zoom`` 1 fits the fan's depth into the canvas; larger values zoom in so the fan's sides and bottom
    leave the canvas (EchoNet-Dynamic's crops). The structures given to :meth:`randomize` as ``keep`` stay
    inside the canvas (the zoom is reduced until they do); with probability ``apex_cut_prob`` the view is
    shifted up so the apex and near field are cut off.

    Args:
        prob: probability of applying.
        zoom: range of the zoom.
        shift: largest lateral shift and downward shift of the apex, as fractions of the canvas.
        sides: canvas sides to draw from.
        apex_cut_prob: probability of cutting the near field off (up to 12% of the canvas).
    """

    def __init__(
        self,
        prob: float = 0.5,
        zoom: tuple[float, float] = (0.9, 1.5),
        shift: float = 0.08,
        sides: Sequence[int] = CANVAS_SIDES,
        apex_cut_prob: float = 0.1,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.zoom, self.shift, self.sides, self.apex_cut_prob = zoom, shift, tuple(sides), apex_cut_prob
        self.matrix: np.ndarray | None = None
        self.side = 0

    def randomize(self, mask: np.ndarray, keep: np.ndarray | None = None) -> None:  # type: ignore[override]
        """Draw the view of a frame with sector ``mask`` (H, W) keeping the ``keep`` (H, W) pixels in view."""
        super().randomize(None)
        if not self._do_transform:
            return
        rows = np.flatnonzero(mask.any(1))
        depth = float(rows[-1] - rows[0] + 1) if rows.size else float(mask.shape[0])
        ar, ac = fan_apex(mask)
        side = int(self.R.choice(self.sides))
        zoom = self.R.uniform(*self.zoom)
        dx = self.R.uniform(-self.shift, self.shift)
        dy = self.R.uniform(-0.02, self.shift)
        if self.R.uniform() < self.apex_cut_prob:
            dy = -self.R.uniform(0.03, 0.12)
        kr, kc = (
            (np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0)))
            if keep is not None and keep.any()
            else (None, None)
        )
        for _ in range(30):
            scale = zoom * side / depth
            top, left = ar - dy * side / scale, ac - (0.5 + dx) * side / scale
            if kr is None or (
                kr[0] * scale - top * scale >= 1
                and (kr[-1] - top) * scale <= side - 2
                and (kc[0] - left) * scale >= 1
                and (kc[-1] - left) * scale <= side - 2
            ):
                break
            zoom, dx, dy = zoom * 0.95, dx * 0.8, max(dy, 0.0) * 0.8
        self.side = side
        self.matrix = np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]])

    def __call__(self, img: torch.Tensor | np.ndarray, mode: str = "bilinear") -> torch.Tensor:
        """Args: img (C, H, W); mode ``bilinear`` (images) or ``nearest`` (labels, masks).

        Returns:
            (C, side, side) float32 tensor (a copy of ``img`` as float32 when the transform did not fire).
        """
        a = _as_numpy(img).astype(np.float32)
        if not self._do_transform or self.matrix is None:
            return torch.from_numpy(a.copy())
        scale = self.matrix[0, 0]
        interp = cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR
        out = []
        for ch in a:
            if mode != "nearest" and scale < 0.8:  # anti-alias before shrinking
                ch = cv2.GaussianBlur(ch, (0, 0), 0.45 / scale)
            out.append(cv2.warpAffine(ch, self.matrix, (self.side, self.side), flags=interp, borderValue=0.0))
        return torch.from_numpy(np.stack(out))


class RandVideoCoding(RandomizableTransform):
    """Lossy coding of a study: down-sampling to a coarser source grid and JPEG (MJPEG) coding of each frame.

    Args:
        prob: probability of applying.
        quality: range of the JPEG quality.
        source_scale: range of the source grid's size relative to the frame (1 = no resampling).
    """

    def __init__(
        self, prob: float = 0.5, quality: tuple[int, int] = (30, 95), source_scale: tuple[float, float] = (0.5, 1.0)
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.quality, self.source_scale = quality, source_scale
        self._q, self._s = 90, 1.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self._q = int(self.R.randint(self.quality[0], self.quality[1] + 1))
        self._s = float(self.R.uniform(*self.source_scale))

    def __call__(self, img: torch.Tensor | np.ndarray, randomize: bool = True) -> torch.Tensor:
        """Args: img (C, H, W) in [0, 1]. Returns: (C, H, W) float32 tensor in [0, 1]."""
        if randomize:
            self.randomize()
        a = _as_numpy(img).astype(np.float32)
        if not self._do_transform:
            return torch.from_numpy(a.copy())
        out = []
        for ch in a:
            h, w = ch.shape
            u8 = np.round(np.clip(ch, 0, 1) * 255).astype(np.uint8)
            if self._s < 0.98:
                small = (max(8, round(w * self._s)), max(8, round(h * self._s)))
                u8 = cv2.resize(u8, small, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, self._q])
            u8 = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
            if u8.shape != (h, w):
                u8 = cv2.resize(u8, (w, h), interpolation=cv2.INTER_LINEAR)
            out.append(u8.astype(np.float32) / 255.0)
        return torch.from_numpy(np.stack(out))


class RandFieldOfViewd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandFieldOfView`: one view for every key.

    Args:
        keys: keys to transform (images, label maps, the sector mask).
        mask_key: the sector mask (1, H, W) that locates the fan.
        keep_key: a label map whose ``keep_labels`` must stay in view (None: no constraint).
        keep_labels: label values to keep in view.
        modes: interpolation per key (``bilinear`` or ``nearest``).
        allow_missing_keys: do not fail on missing keys.
        kwargs: :class:`RandFieldOfView` arguments.
    """

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str = "mask",
        keep_key: str | None = "label",
        keep_labels: Sequence[int] = (1, 2),
        modes: Sequence[str] | str = "bilinear",
        prob: float = 0.5,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.view = RandFieldOfView(prob=1.0, **kwargs)
        self.mask_key, self.keep_key, self.keep_labels = mask_key, keep_key, tuple(keep_labels)
        self.modes = [modes] * len(self.keys) if isinstance(modes, str) else list(modes)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.view.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        mask = _as_numpy(d[self.mask_key])[0] > 0.5
        keep = np.isin(_as_numpy(d[self.keep_key])[0], self.keep_labels) if self.keep_key else None
        self.view.randomize(mask, keep)
        for key, mode in self.key_iterator(d, self.modes):
            d[key] = self.view(d[key], mode=mode)
        return d


class RandVideoCodingd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandVideoCoding` (one draw for every key)."""

    def __init__(self, keys: KeysCollection, prob: float = 0.5, allow_missing_keys: bool = False, **kwargs) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.coding = RandVideoCoding(prob=1.0, **kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.coding.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        self.coding.randomize()
        for key in self.key_iterator(d):
            d[key] = self.coding(d[key], randomize=False)
        return d
