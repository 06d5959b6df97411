"""Ultrasound intensity augmentation (echokdm.transforms.intensity): array and dictionary versions."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from echokdm.transforms.intensity import (
    RandHaze,
    RandHazed,
    RandShadowBands,
    RandShadowBandsd,
    RandSpeckle,
    RandSpeckled,
    RandTissueContrast,
    RandTissueContrastd,
)

PAIRS = [(RandSpeckle, RandSpeckled), (RandShadowBands, RandShadowBandsd), (RandHaze, RandHazed)]


def _label():
    lab = torch.zeros(1, 48, 48)
    lab[:, 10:30, 14:34] = 1
    lab[:, 8:32, 10:14] = 2
    return lab


@pytest.mark.parametrize("cls", [RandSpeckle, RandShadowBands, RandHaze])
def test_ultrasound_augmentations_change_the_image_within_range(cls):
    img = torch.full((1, 48, 48), 0.5)
    t = cls(prob=1.0)
    t.set_random_state(3)
    out = t(img)
    assert out.shape == img.shape and not torch.equal(out, img)
    assert out.min() >= 0 and out.max() <= 1
    t.set_random_state(3)
    assert torch.equal(t(img), out)
    assert torch.equal(cls(prob=0.0)(img), img)


def test_shadow_dict_transform_darkens_a_band_from_the_apex():
    d = RandShadowBandsd(keys="image", prob=1.0, strength=(0.9, 0.9))
    d.set_random_state(0)
    out = d({"image": torch.ones(1, 64, 64)})["image"]
    assert out[0, 0].min() > 0.99  # top row (above the bands' start) untouched or nearly
    assert out[0, -1].min() < 0.5  # a band darkens the deep rows


@pytest.mark.parametrize("array_cls, dict_cls", PAIRS)
@pytest.mark.parametrize("prob", [0.0, 1.0])
@pytest.mark.parametrize("given", [np.full((1, 48, 48), 0.5), torch.full((1, 48, 48), 0.5, dtype=torch.float64)])
def test_output_type_does_not_depend_on_whether_the_transform_fired(array_cls, dict_cls, prob, given):
    out = array_cls(prob=prob)(given)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.shape == (1, 48, 48)
    d = dict_cls(keys="image", prob=prob)({"image": given})["image"]
    assert isinstance(d, MetaTensor) and d.dtype == torch.float32
    label = RandTissueContrast(prob=prob)(given, _label())
    assert isinstance(label, MetaTensor) and label.dtype == torch.float32


@pytest.mark.parametrize("array_cls, dict_cls", PAIRS)
def test_dict_version_applies_the_array_transform_with_one_draw_for_all_keys(array_cls, dict_cls):
    img = torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(0))
    d = dict_cls(keys=["a", "b"], prob=1.0).set_random_state(4)({"a": img, "b": img.clone(), "c": img})
    ref = array_cls(prob=1.0).set_random_state(4)(img)
    assert not torch.equal(ref, img)
    assert torch.equal(d["a"], ref) and torch.equal(d["b"], ref)
    assert d["c"] is img  # keys not named are passed through


def test_tissue_contrast_changes_structures_by_label():
    img = torch.full((1, 48, 48), 0.5)
    label = _label()
    t = RandTissueContrast(prob=1.0, fill=(0.2, 0.2), gain=(0.6, 0.6)).set_random_state(1)
    out = t(img, label)
    ref = RandTissueContrastd("image", label_key="label", prob=1.0, fill=(0.2, 0.2), gain=(0.6, 0.6))
    assert torch.equal(ref.set_random_state(1)({"image": img, "label": label})["image"], out)
    cavity, background = out[0, 16:24, 20:28], out[0, 40:, 40:]
    assert cavity.mean() > 0.5 + 0.1  # chamber clutter added
    assert torch.allclose(background, torch.full_like(background, 0.3), atol=1e-4)  # gain 0.6 on background
