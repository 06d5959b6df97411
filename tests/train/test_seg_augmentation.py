"""The segmenter's training augmentation moves image and labels together (``echokdm.train.seg_data``)."""

import numpy as np
import torch

from echokdm.train.seg_data import SegAugmentConfig, augmentation

#: every random step off, so that a test turns on the one it checks
OFF = {
    k: 0.0
    for k in (
        "affine_prob", "flip_prob", "tissue_contrast_prob", "gamma_prob", "bias_field_prob", "hist_shift_prob",
        "blur_prob", "speckle_prob", "noise_prob", "shadow_prob", "haze_prob", "dropout_prob",
    )
}


def _ellipse_sample(size: int = 128) -> dict[str, torch.Tensor]:
    yy, xx = np.mgrid[:size, :size]
    cavity = ((yy - 60) / 30.0) ** 2 + ((xx - 64) / 18.0) ** 2 < 1
    label = torch.as_tensor(cavity.astype(np.float32))[None]
    return {"image": label.clone(), "label": label, "mask": torch.ones(1, size, size)}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_elastic_deformation_moves_image_and_labels_alike():
    aug = augmentation(SegAugmentConfig(**OFF, elastic_prob=1.0))
    aug.set_random_state(3)
    sample = _ellipse_sample()
    moved = []
    for _ in range(4):
        out = aug(dict(sample))
        image, label = np.asarray(out["image"][0]) > 0.5, np.asarray(out["label"][0]) > 0.5
        assert _dice(image, label) > 0.97  # the same deformation for both keys
        moved.append(1 - _dice(label, np.asarray(sample["label"][0]) > 0.5))
    assert 0.02 < np.mean(moved) < 0.3, moved  # borders move a few pixels, not the whole cavity


def test_elastic_deformation_is_off_by_default():
    aug = augmentation(SegAugmentConfig(**OFF))
    sample = _ellipse_sample()
    out = aug(dict(sample))
    assert torch.equal(torch.as_tensor(out["label"]), sample["label"])


def _lv_over_la(size: int = 128) -> dict[str, torch.Tensor]:
    """An LV cavity (1) above an LA (3), touching along a horizontal annulus at row 90, in dark tissue."""
    yy, xx = np.mgrid[:size, :size]
    label = np.zeros((size, size), np.float32)
    label[(((yy - 50) / 42.0) ** 2 + ((xx - 64) / 20.0) ** 2 < 1) & (yy < 90)] = 1
    label[(yy >= 90) & (((yy - 105) / 16.0) ** 2 + ((xx - 64) / 18.0) ** 2 < 1)] = 3
    image = torch.as_tensor(np.where(label > 0, 0.05, 0.6).astype(np.float32))[None]
    return {"image": image, "label": torch.as_tensor(label)[None], "mask": torch.ones(1, size, size)}


def test_mitral_leaflets_brighten_the_lv_base_and_keep_the_labels():
    aug = augmentation(SegAugmentConfig(**OFF, leaflet_prob=1.0))
    aug.set_random_state(0)
    sample = _lv_over_la()
    out = aug(dict(sample))
    assert torch.equal(torch.as_tensor(out["label"]), sample["label"])  # the cavity still ends at the annulus
    changed = np.asarray(out["image"][0]) > np.asarray(sample["image"][0]) + 0.05
    rows = np.nonzero(changed)[0]
    assert changed.sum() > 20 and rows.min() > 55 and rows.max() <= 92  # strips in the basal half, from the annulus
    inside = np.asarray(sample["label"][0]) == 1
    assert (changed & ~inside).sum() <= 0.15 * changed.sum()  # in the cavity (antialiased edges aside)


def test_mitral_leaflets_need_an_lv_touching_the_la():
    sample = _lv_over_la()
    sample["label"][sample["label"] == 3] = 0
    aug = augmentation(SegAugmentConfig(**OFF, leaflet_prob=1.0))
    out = aug(dict(sample))
    assert torch.equal(torch.as_tensor(out["image"]), sample["image"])


def test_leaflets_only_where_the_valve_is_open():
    from echokdm.transforms import RandMitralLeafletsd

    leaflets = RandMitralLeafletsd("image", label_key="label", open_key="valve_open", prob=1.0)
    leaflets.set_random_state(0)
    closed = {**_lv_over_la(), "valve_open": torch.tensor(False)}
    assert torch.equal(torch.as_tensor(leaflets(closed)["image"]), closed["image"])
    opened = {**_lv_over_la(), "valve_open": torch.tensor(True)}
    assert not torch.equal(torch.as_tensor(leaflets(opened)["image"]), opened["image"])


def _closed_valve() -> dict[str, torch.Tensor]:
    """:func:`_lv_over_la` with the phantom's closed valve: a bright line along the LV-LA border (rows 88-91),
    speckle-like grey levels in the blood."""
    sample = _lv_over_la()
    label = np.asarray(sample["label"][0])
    rng = np.random.default_rng(0)
    image = np.where(label > 0, rng.uniform(0.0, 0.1, label.shape), 0.6).astype(np.float32)
    image[88:92][label[88:92] > 0] = 0.9
    sample["image"] = torch.as_tensor(image)[None]
    return {**sample, "valve_open": torch.tensor(True)}


def test_open_valve_fills_the_lv_la_border_with_blood_and_keeps_the_labels():
    from echokdm.transforms import RandOpenValved

    sample = _closed_valve()
    opened = RandOpenValved("image", label_key="label", open_key="valve_open", prob=1.0).set_random_state(0)(sample)
    before, after = np.asarray(sample["image"][0]), np.asarray(opened["image"][0])
    label = np.asarray(sample["label"][0])
    assert torch.equal(torch.as_tensor(opened["label"]), sample["label"])
    line = (label > 0) & (np.arange(128)[:, None] >= 88) & (np.arange(128)[:, None] < 92)
    centre = line & (np.abs(np.arange(128) - 64) <= 4)[None, :]
    assert before[line].min() > 0.89 and after[centre].max() < 0.2 and after[line].mean() < 0.3  # no bright border
    assert after[centre].mean() > 0.01  # blood, with its own grey levels, not black
    np.testing.assert_array_equal(after[label == 0], before[label == 0])  # walls and tissue untouched
    far = (label == 1) & (np.arange(128)[:, None] < 70)
    np.testing.assert_array_equal(after[far], before[far])  # only a band around the border changes


def test_open_valve_only_in_diastole_and_off_by_default():
    from echokdm.transforms import RandOpenValved

    closed = {**_closed_valve(), "valve_open": torch.tensor(False)}
    valve = RandOpenValved("image", label_key="label", open_key="valve_open", prob=1.0)
    assert torch.equal(torch.as_tensor(valve(closed)["image"]), closed["image"])
    names = [type(t).__name__ for t in augmentation(SegAugmentConfig()).transforms]
    assert "RandOpenValved" not in names  # absent, so the other transforms keep their random draws
    names = [type(t).__name__ for t in augmentation(SegAugmentConfig(open_valve_prob=0.5)).transforms]
    assert names.index("RandOpenValved") == names.index("RandMitralLeafletsd") - 1  # leaflets drawn over it


def test_systole_runs_from_ed_to_the_next_es():
    from echokdm.train.seg_data import in_systole

    assert [t for t in range(45) if in_systole(t, np.array([4, 28]), np.array([14, 38]))] == [
        *range(4, 15), *range(28, 39)
    ]
    # a loop that starts in systole: the frames up to its first ES are systolic too
    assert [t for t in range(10) if in_systole(t, np.array([5]), np.array([2, 9]))] == [0, 1, 2, 5, 6, 7, 8, 9]


def test_phantom_frames_say_whether_the_valve_is_open():
    from echokdm.train.seg_data import PhantomFrames

    sample = _ellipse_sample(32)
    loop = {
        "frames": np.zeros((6, 32, 32), np.uint8), "labels": np.repeat(sample["label"].numpy().astype(np.uint8), 6, 0),
        "mask": np.ones((32, 32), bool), "ed": np.array([1]), "es": np.array([3]),
    }
    frames = PhantomFrames([loop], 32, None, None)
    assert [bool(frames[t]["valve_open"]) for t in range(6)] == [True, False, False, False, True, True]
    no_phases = {k: v for k, v in loop.items() if k not in ("ed", "es")}
    assert bool(PhantomFrames([no_phases], 32, None, None)[2]["valve_open"])  # sources without phases: open
