"""KDM and its ablations as harness predictors (tiny untrained weights: mechanics, not quality)."""

import numpy as np
import pytest
import torch
from evaluate_synthetic import synthetic_case

from echokdm.evaluate import get_predictor
from echokdm.evaluate.tasks import make_sample


@pytest.fixture(scope="module")
def case():
    return synthetic_case(0, size=64, frames=6)


@pytest.mark.parametrize("name", ["kdm", "k2f-warp"])
@pytest.mark.parametrize("task", ["es", "sequence"])
def test_flow_models_predict_every_target(tiny_weights, case, name, task):
    from echokdm.predict import PredictWeights

    sample = make_sample(case, task)
    pred = get_predictor(name, steps=2, weights=PredictWeights.from_dir(tiny_weights))
    out = pred(sample, torch.Generator().manual_seed(0))
    assert out.shape == (len(sample.target_keypoints), *sample.source.shape)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    outside = ~sample.sector_mask
    np.testing.assert_array_equal(out[:, outside], np.broadcast_to(sample.source[outside], out[:, outside].shape))
    again = pred(sample, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out, again)


def test_k2i_predicts_without_flow(tiny_weights, case, tmp_path):
    from conftest import TINY_SIZE, save_weights

    from echokdm.models.k2i import build_k2i_unet

    net = build_k2i_unet(TINY_SIZE)
    path = save_weights(tmp_path / "k2i.safetensors", net, "k2i", dict(net.config))
    sample = make_sample(case, "sequence")
    pred = get_predictor("k2i", steps=1, weights=str(path))
    out = pred(sample, torch.Generator().manual_seed(0))
    assert out.shape == (len(sample.target_keypoints), *sample.source.shape)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    outside, inside = ~sample.sector_mask, sample.sector_mask
    np.testing.assert_array_equal(out[:, outside], np.broadcast_to(sample.source[outside], out[:, outside].shape))
    assert np.abs(out[:, inside] - sample.source[inside]).max() > 1e-2  # generated, not the source passed through
    assert not np.array_equal(pred(sample, torch.Generator().manual_seed(1)), out)  # sampled from the noise
    # the noise is shared across targets, so frames differ only because each target's keypoints reach the model
    assert all(np.abs(out[i] - out[0])[inside].max() > 1e-4 for i in range(1, len(out)))
