"""built_with: a network built on the meta device holds exactly the loaded tensors, or is built the usual way."""

import pytest
import torch
from diffusers import UNet2DModel

from echokdm.models.loading import built_with, load_diffusers_model
from echokdm.weights import load


def test_shipped_unet_without_initialisation_equals_the_usual_load():
    w = load("kdm_k2f")
    usual = UNet2DModel.from_config(w.config)
    usual.load_state_dict(w.state_dict)
    net = load_diffusers_model(UNet2DModel, "kdm_k2f")
    tensors = dict(net.state_dict())
    assert tensors.keys() == usual.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in usual.state_dict().items())
    assert not any(t.is_meta for t in (*net.parameters(), *net.buffers()))
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.randn(1, net.config.in_channels, net.config.sample_size, net.config.sample_size)
    with torch.no_grad():
        assert torch.equal(net(x, 3).sample, usual.eval()(x, 3).sample)


class WithConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)


def test_a_tensor_outside_the_state_dict_is_built_the_usual_way():
    state = WithConstant().state_dict()
    net = built_with(WithConstant, state)
    assert torch.equal(net.scale, torch.full((2,), 3.0)) and torch.equal(net.linear.weight, state["linear.weight"])


def test_a_state_dict_that_does_not_fit_is_refused():
    with pytest.raises(RuntimeError, match="Missing key"):
        built_with(WithConstant, {"linear.weight": torch.zeros(2, 2)})
