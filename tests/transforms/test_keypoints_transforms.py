"""MONAI keypoint transforms: extraction, drawing, and keypoints that follow spatial transforms."""

import monai.transforms as mt
import numpy as np
import pytest
import torch
from a4c_shapes import a4c_labels, a4c_loop
from monai.data import MetaTensor

from echokdm.errors import InputError
from echokdm.transforms import (
    ApplyTransformToKeypoints,
    ApplyTransformToKeypointsd,
    ExtractKeypoints,
    ExtractKeypointsd,
    KeypointsToMask,
    KeypointsToMaskd,
)

BIG = dict(a=80.0, b=40.0, offset=20.0, wall=12.0, base=(128.0, 200.0))


def _blob(shape, x, y, sigma=4.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return torch.from_numpy(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))).float()[None]


def _peak(img):
    a = img[0].numpy()
    w = np.clip(a - 0.5 * a.max(), 0, None)
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.mark.parametrize(
    "transform",
    [
        mt.Resize((320, 320)),
        mt.Resize((200, 300)),
        mt.Flip(spatial_axis=1),
        mt.Flip(spatial_axis=0),
        mt.Rotate(0.3),
        mt.Rotate90(k=1),
        mt.Zoom(1.3),
        mt.Affine(rotate_params=0.2, scale_params=(1.1, 0.9), translate_params=(5, -3), image_only=True),
    ],
)
def test_keypoints_follow_the_image(transform):
    """A keypoint placed on a bright blob stays on the blob through MONAI spatial transforms."""
    img = MetaTensor(_blob((256, 256), 90.3, 140.7))
    kps = MetaTensor(torch.tensor([[90.3, 140.7]] * 20), affine=img.affine)
    out = transform(img)
    moved = ApplyTransformToKeypoints()(kps, out)
    assert moved.shape == (20, 2) and moved.meta["spatial_shape"] == tuple(out.shape[1:])
    np.testing.assert_allclose(moved[0].numpy(), _peak(out), atol=0.1)


@pytest.mark.parametrize(
    "transform,side",
    [
        (mt.Resized(["image", "label"], (320, 320), mode=("bilinear", "nearest-exact")), "left"),
        (mt.Flipd(["image", "label"], spatial_axis=1), "right"),
        (mt.Rotated(["image", "label"], angle=0.3, mode=("bilinear", "nearest")), "left"),
    ],
)
def test_pipeline_keypoints_match_keypoints_of_the_transformed_labels(transform, side):
    labels = MetaTensor(torch.from_numpy(a4c_labels((256, 256), **BIG))[None])
    data = {"image": MetaTensor(torch.rand(1, 256, 256)), "label": labels}
    pipeline = mt.Compose(
        [ExtractKeypointsd("label", n=40), transform, ApplyTransformToKeypointsd("label_keypoints", "image")]
    )
    out = pipeline(data)
    direct = ExtractKeypoints(40, septum_side=side)(out["label"])
    err = np.linalg.norm(out["label_keypoints"].numpy() - direct.numpy(), axis=1)
    assert err.mean() < 0.5 and err.max() < 1.5, err


def test_loops_keep_their_frames():
    lab = a4c_loop(6, 6.0)
    data = {"image": MetaTensor(torch.rand(1, 6, 128, 128)), "label": MetaTensor(torch.from_numpy(lab)[None])}
    pipeline = mt.Compose(
        [
            ExtractKeypointsd("label"),
            mt.Resized(["image", "label"], (-1, 160, 160), mode=("trilinear", "nearest-exact")),
            mt.Flipd(["image", "label"], spatial_axis=2),
            ApplyTransformToKeypointsd("label_keypoints", "image"),
        ]
    )
    out = pipeline(data)
    kps = out["label_keypoints"].numpy()
    assert kps.shape == (6, 20, 2)
    direct = ExtractKeypoints(septum_side="right")(out["label"]).numpy()
    assert np.linalg.norm(kps - direct, axis=-1).mean() < 0.5
    flipped_time = mt.Flip(spatial_axis=0)(out["image"])
    with pytest.raises(InputError, match="frame axis"):
        ApplyTransformToKeypoints()(out["label_keypoints"], flipped_time)


def test_keypoints_to_mask_round_trip():
    lab = a4c_labels((256, 256), **BIG)
    d = ExtractKeypointsd("label", n=40)({"label": MetaTensor(torch.from_numpy(lab)[None])})
    d = KeypointsToMaskd("label_keypoints")(d)
    mask = d["label_keypoints_mask"]
    assert mask.shape == (1, 256, 256) and mask.dtype == torch.uint8
    for v in (1, 2):
        a, b = mask[0].numpy() == v, lab == v
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.94
    loop = KeypointsToMask((128, 128))(ExtractKeypoints()(torch.from_numpy(a4c_loop(3, 6.0))[None]))
    assert loop.shape == (1, 3, 128, 128)


def test_errors():
    with pytest.raises(InputError, match="spatial_size"):
        KeypointsToMask()(np.zeros((20, 2)))
    with pytest.raises(InputError, match="MetaTensor"):
        ApplyTransformToKeypoints()(torch.zeros(20, 2), MetaTensor(torch.zeros(1, 8, 8)))
    with pytest.raises(InputError, match="do not fit"):
        ApplyTransformToKeypoints()(MetaTensor(torch.zeros(3, 20, 2)), MetaTensor(torch.zeros(1, 8, 8)))
    lab = torch.from_numpy(a4c_loop(3, 6.0))
    lab[1] = 0
    with pytest.raises(InputError, match="frame 1"):
        ExtractKeypoints()(lab[None])
    with pytest.raises(InputError, match="output keys"):
        ExtractKeypointsd(["a", "b"], output_keys=["x"])
