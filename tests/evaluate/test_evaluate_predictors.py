"""Predictors of the evaluation harness, tasks and the atlas segmenter on synthetic loops with exact motion."""

import numpy as np
import pytest
from evaluate_synthetic import synthetic_case

from echokdm.errors import InputError
from echokdm.evaluate.predictors import PREDICTORS, CopyPredictor, Predictor, get_predictor, sector_anchors
from echokdm.evaluate.segmenter import AtlasSegmenter
from echokdm.evaluate.tasks import invert_ddf, make_sample
from echokdm.flow import warp
from echokdm.metrics import lv_overlap


@pytest.fixture(scope="module")
def case():
    return synthetic_case(1, size=64)


def test_registry_names_and_errors():
    assert {"copy", "tps", "oracle"} <= set(PREDICTORS)
    assert isinstance(get_predictor("copy"), CopyPredictor)
    assert all(isinstance(get_predictor(n), Predictor) for n in ("copy", "tps", "oracle"))
    with pytest.raises(InputError, match="unknown predictor 'nope'.*copy"):
        get_predictor("nope")


def test_copy_and_oracle(case):
    s = make_sample(case, "es")
    assert np.array_equal(get_predictor("copy")(s)[0], s.source)
    oracle = get_predictor("oracle")
    assert oracle.kind == "ceiling" and oracle.applicable(s)
    # synthetic frames are exact warps of ED, so the oracle reproduces ES up to float error
    assert np.abs(oracle(s) - s.targets)[:, case.sector_mask].max() < 1e-4
    s.ddf = None
    assert not oracle.applicable(s)


def test_truth_returns_the_targets_and_needs_them(case):
    s = make_sample(case, "sequence")
    truth = get_predictor("truth")
    assert truth.kind == "ceiling" and np.array_equal(truth(s), s.targets)
    s.targets = None
    assert not truth.applicable(s)


def test_tps_moves_keypoints_and_keeps_the_background(case):
    s = make_sample(case, "es")
    pred = get_predictor("tps")(s)
    assert pred.shape == s.targets.shape and pred.dtype == np.float32
    assert np.abs(pred - s.targets).mean() < 0.7 * np.abs(s.source - s.targets).mean()
    outside = ~case.sector_mask
    assert np.array_equal(pred[0][outside], s.source[outside])
    # the source labels carried by the same warp land on the target mask
    from echokdm.flow import keypoint_flow

    ddf = keypoint_flow(
        s.source_keypoints, s.target_keypoints[0], s.source.shape, anchors=sector_anchors(s.sector_mask, 32)
    )
    moved = (
        warp(s.source_labels[None, None].astype(np.float32), ddf[None], mode="nearest")[:, 0].numpy().astype(np.uint8)
    )
    assert (
        lv_overlap(moved, s.target_labels, None)[0] > 0.95 > lv_overlap(s.source_labels[None], s.target_labels, None)[0]
    )


def test_sector_anchors_lie_on_the_outline(case):
    a = sector_anchors(case.sector_mask, 32)
    assert a.shape == (32, 2)
    xi, yi = np.clip(np.round(a).astype(int), 0, 63).T
    inside = case.sector_mask[yi, xi]
    from scipy import ndimage

    near = ndimage.binary_dilation(case.sector_mask, iterations=1) & ~ndimage.binary_erosion(
        case.sector_mask, iterations=1
    )
    assert near[yi, xi].all()
    assert inside.any()
    assert a[0, 1] == pytest.approx(a[:, 1].min())  # starts at the fan apex


def test_inverse_ddf_undoes_the_motion(case):
    u = case.ddf_from_ed[case.es]
    v = invert_ddf(u)
    # following v, then u from where v lands, returns to the start: v(q) + u(q + v(q)) = 0
    residual = np.linalg.norm(warp(u[None], v[None])[0].numpy() + v, axis=0)
    assert np.abs(u).max() > 2.0
    assert residual[8:-8, 8:-8].max() < 0.05


def test_tasks_build_the_expected_samples(case):
    es, ed, seq = make_sample(case, "es"), make_sample(case, "ed"), make_sample(case, "sequence", n_keypoints=20)
    assert es.source_is_ed and not ed.source_is_ed
    assert np.array_equal(ed.source, case.frames[case.es]) and np.array_equal(ed.targets[0], case.frames[case.ed])
    assert seq.targets.shape[0] == case.es - case.ed and seq.target_keypoints.shape == (case.es - case.ed, 20, 2)
    assert es.source_keypoints.shape == (40, 2)
    assert np.abs(get_predictor("oracle")(ed) - ed.targets).mean() < 0.35 * np.abs(ed.source - ed.targets).mean()
    with pytest.raises(InputError, match="unknown task"):
        make_sample(case, "nope")
    partial = synthetic_case(1, size=64)
    del partial.labels[2]
    with pytest.raises(InputError, match="labels on every frame"):
        make_sample(partial, "sequence")


def test_atlas_segmenter_follows_the_image(case):
    s = make_sample(case, "es")
    seg = AtlasSegmenter()
    kw = dict(sector_mask=s.sector_mask, atlas=(s.source, s.source_labels))
    assert np.array_equal(seg(s.source[None], **kw)[0], s.source_labels)
    labels = seg(s.targets, **kw)
    assert (
        lv_overlap(labels, s.target_labels, None)[0]
        > lv_overlap(s.source_labels[None], s.target_labels, None)[0] + 0.03
    )
    with pytest.raises(InputError):
        seg(s.targets, sector_mask=s.sector_mask)


def test_builtin_segmenter_adapter(case):
    from echokdm.models.seg import LVSegmenter, SegModelConfig, build_network
    from echokdm.segmenter import BuiltinSegmenter

    cfg = SegModelConfig(size=32, channels=(4, 8), strides=(2,), num_res_units=0)
    seg = BuiltinSegmenter(LVSegmenter(build_network(cfg), cfg))  # untrained: checks the plumbing only
    labels = seg(case.frames[:3], sector_mask=case.sector_mask)
    assert labels.shape == case.frames[:3].shape and labels.dtype == np.uint8
    assert labels.max() <= 3 and not labels[:, ~case.sector_mask].any()
