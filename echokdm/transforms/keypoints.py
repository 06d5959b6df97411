"""MONAI transforms for contour keypoints: extract them from label maps, draw them back, and carry them
through spatial transforms (resize, flip, rotate, ...) applied to the images they belong to.

Keypoints are tensors (K, 2) for one frame or (T, K, 2) for a loop, in (x, y) pixels. The transforms
here return them as ``MetaTensor`` whose ``affine`` is the affine of the grid they are measured on (the
label map's), so :class:`ApplyTransformToKeypoints` can map them onto the grid of an image after MONAI
spatial transforms have changed its ``affine``::

    Compose([
        ExtractKeypointsd(keys="label", n=40),               # -> d["label_keypoints"]
        Resized(keys=["image", "label"], spatial_size=(128, 128), mode=("bilinear", "nearest-exact")),
        Flipd(keys=["image", "label"], spatial_axis=1),
        Rotated(keys=["image", "label"], angle=0.2, mode=("bilinear", "nearest")),
        ApplyTransformToKeypointsd(keys="label_keypoints", refer_key="image"),
    ])

This wraps MONAI's :class:`monai.transforms.ApplyTransformToPoints` (which works in array-axis order)
for the (x, y) order of echokdm keypoints and for loops, whose keypoints carry their frame index as the
first spatial axis. A flip mirrors the anatomy: extracting keypoints again from a flipped label map
needs ``septum_side="right"`` to keep the same order. Resize label maps with ``"nearest-exact"``: torch's
``"nearest"`` shifts them by up to half an input pixel, which the affine (and so the keypoints) does not.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import ApplyTransformToPoints, MapTransform, Transform

from echokdm.errors import InputError
from echokdm.keypoints import extract_keypoints, keypoints_to_mask


class ExtractKeypoints(Transform):
    """Label map(s) -> ordered contour keypoints (see :func:`echokdm.keypoints.extract_keypoints`).

    Args:
        n: 20 (endocardium) or 40 (endocardium + epicardium).
        septum_side: image side of the septum in the apex-up display ("left" for standard A4C).
        smooth_px: Gaussian sigma (pixels) applied to masks before tracing.
    """

    def __init__(self, n: int = 20, septum_side: Literal["left", "right"] = "left", smooth_px: float = 1.5) -> None:
        self.n, self.septum_side, self.smooth_px = n, septum_side, smooth_px

    def __call__(self, labels: torch.Tensor | np.ndarray) -> MetaTensor:
        """Args:
            labels: (H, W) or (1, H, W) for one frame, (1, T, H, W) for a loop.

        Returns:
            float32 ``MetaTensor`` (n, 2) or (T, n, 2) (x, y) with the labels' affine and
            ``meta["spatial_shape"]`` = (H, W).

        Raises:
            InputError: a frame without LV cavity, or labels of another shape.
        """
        arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if arr.ndim == 4 and arr.shape[0] == 1:
            frames = arr[0]
        elif arr.ndim in (2, 3) and (arr.ndim == 2 or arr.shape[0] == 1):
            frames = None
        else:
            raise InputError(f"labels must be (H, W), (1, H, W) or (1, T, H, W), got shape {tuple(arr.shape)}")
        kw = {"n": self.n, "septum_side": self.septum_side, "smooth_px": self.smooth_px}
        if frames is None:
            kps = extract_keypoints(arr.reshape(arr.shape[-2:]), **kw)
        else:
            kps = np.stack([_frame_keypoints(f, t, kw) for t, f in enumerate(frames)])
        affine = labels.affine if isinstance(labels, MetaTensor) else None
        return _keypoint_tensor(kps, affine, tuple(arr.shape[-2:]))


class KeypointsToMask(Transform):
    """Keypoints -> CAMUS label map (see :func:`echokdm.keypoints.keypoints_to_mask`).

    Args:
        spatial_size: (H, W) of the output; by default the keypoints' ``meta["spatial_shape"]``.
    """

    def __init__(self, spatial_size: Sequence[int] | None = None) -> None:
        self.spatial_size = tuple(spatial_size) if spatial_size is not None else None

    def __call__(self, keypoints: torch.Tensor | np.ndarray) -> MetaTensor:
        """Args:
            keypoints: (K, 2) or (T, K, 2), K = 20 or 40.

        Returns:
            uint8 ``MetaTensor`` (1, H, W) or (1, T, H, W) with the keypoints' affine.

        Raises:
            InputError: no size known, or keypoints of another shape.
        """
        size = self.spatial_size
        if size is None and isinstance(keypoints, MetaTensor):
            size = keypoints.meta.get("spatial_shape")
        if size is None:
            raise InputError("KeypointsToMask needs spatial_size (the keypoints carry no spatial_shape)")
        kps = _numpy(keypoints)
        if kps.ndim == 2:
            out = keypoints_to_mask(kps, tuple(size))[None]
        elif kps.ndim == 3:
            out = np.stack([keypoints_to_mask(k, tuple(size)) for k in kps])[None]
        else:
            raise InputError(f"keypoints must be (K, 2) or (T, K, 2), got shape {tuple(kps.shape)}")
        affine = keypoints.affine if isinstance(keypoints, MetaTensor) else None
        return MetaTensor(torch.from_numpy(out), affine=affine)


class ApplyTransformToKeypoints(Transform):
    """Map keypoints measured on one grid onto the current grid of an image.

    The keypoints' ``affine`` says which grid they were measured on (set by :class:`ExtractKeypoints`,
    or wrap your own: ``MetaTensor(kps, affine=image.affine)``); the image's ``affine`` includes every
    spatial transform applied to it since. For a loop (image (C, T, H, W), keypoints (T, K, 2)) the
    frame axis must stay in place.

    Raises:
        InputError: keypoints without an affine, shapes that do not fit the image, or a transform that
            moved the frame axis.
    """

    def __call__(self, keypoints: torch.Tensor, image: torch.Tensor) -> MetaTensor:
        """Args:
            keypoints: (K, 2) for an image (C, H, W), (T, K, 2) for an image (C, T, H, W).
            image: the ``MetaTensor`` whose grid the keypoints should follow.

        Returns:
            float32 ``MetaTensor`` of the keypoints' shape on the image grid, with the image's affine and
            ``meta["spatial_shape"]`` = its (H, W).
        """
        if not isinstance(keypoints, MetaTensor):
            raise InputError("keypoints must be a MetaTensor carrying the affine of the grid they were measured on")
        if not isinstance(image, MetaTensor):
            raise InputError("the reference image must be a MetaTensor with an affine")
        kps = _numpy(keypoints).astype(np.float64)
        sdims = image.ndim - 1
        if sdims == 2 and kps.ndim == 2:
            idx = kps[:, ::-1]
        elif sdims == 3 and kps.ndim == 3 and kps.shape[0] == image.shape[1]:
            t = np.broadcast_to(np.arange(kps.shape[0], dtype=np.float64)[:, None, None], (*kps.shape[:2], 1))
            idx = np.concatenate([t, kps[..., ::-1]], axis=-1).reshape(-1, 3)
        else:
            raise InputError(
                f"keypoints of shape {tuple(kps.shape)} do not fit an image of shape {tuple(image.shape)}: "
                "expected (K, 2) for (C, H, W) or (T, K, 2) for (C, T, H, W)"
            )
        pts = MetaTensor(torch.as_tensor(np.ascontiguousarray(idx[None])), affine=keypoints.affine)
        moved = ApplyTransformToPoints(dtype=torch.float64, invert_affine=True, affine=image.affine)(pts)
        moved = moved.as_tensor().numpy()[0]
        if sdims == 3:
            frames = idx[:, 0]
            if np.abs(moved[:, 0] - frames).max() > 1e-3:
                raise InputError("a spatial transform moved the frame axis of the loop; keypoints cannot follow it")
            out = moved[:, :0:-1].reshape(kps.shape)
        else:
            out = moved[:, ::-1]
        return _keypoint_tensor(out, image.affine, tuple(image.shape[-2:]))


class ExtractKeypointsd(MapTransform):
    """Dictionary version of :class:`ExtractKeypoints`.

    Args:
        keys: label map keys.
        n, septum_side, smooth_px: see :class:`ExtractKeypoints`.
        output_keys: where to put the keypoints; default ``"<key>_keypoints"``.
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        n: int = 20,
        septum_side: Literal["left", "right"] = "left",
        smooth_px: float = 1.5,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.extract = ExtractKeypoints(n, septum_side, smooth_px)
        self.output_keys = _output_keys(self.keys, output_keys, "_keypoints")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.extract(d[key])
        return d


class KeypointsToMaskd(MapTransform):
    """Dictionary version of :class:`KeypointsToMask`.

    Args:
        keys: keypoint keys.
        spatial_size: output (H, W); default: the keypoints' ``meta["spatial_shape"]``.
        output_keys: where to put the masks; default ``"<key>_mask"``.
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int] | None = None,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.draw = KeypointsToMask(spatial_size)
        self.output_keys = _output_keys(self.keys, output_keys, "_mask")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.draw(d[key])
        return d


class ApplyTransformToKeypointsd(MapTransform):
    """Dictionary version of :class:`ApplyTransformToKeypoints`: keypoints follow ``d[refer_key]``.

    Args:
        keys: keypoint keys (replaced in place).
        refer_key: key of the image whose grid they follow.
        allow_missing_keys: skip absent keys.
    """

    def __init__(self, keys: KeysCollection, refer_key: str, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.refer_key = refer_key
        self.apply = ApplyTransformToKeypoints()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.apply(d[key], d[self.refer_key])
        return d


def _frame_keypoints(labels: np.ndarray, t: int, kw: dict) -> np.ndarray:
    try:
        return extract_keypoints(labels, **kw)
    except InputError as e:
        raise InputError(f"frame {t}: {e}") from None


def _keypoint_tensor(kps: np.ndarray, affine: torch.Tensor | None, shape: tuple[int, int]) -> MetaTensor:
    out = MetaTensor(torch.as_tensor(np.ascontiguousarray(kps), dtype=torch.float32), affine=affine)
    out.meta["spatial_shape"] = tuple(int(s) for s in shape)
    return out


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, MetaTensor):
        x = x.as_tensor()
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _output_keys(keys: tuple, output_keys: KeysCollection | None, suffix: str) -> tuple:
    if output_keys is None:
        return tuple(f"{k}{suffix}" for k in keys)
    out = (output_keys,) if isinstance(output_keys, str) else tuple(output_keys)
    if len(out) != len(keys):
        raise InputError(f"{len(keys)} keys but {len(out)} output keys")
    return out
