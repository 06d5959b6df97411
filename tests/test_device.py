"""``echokdm.device.channels_last``: channels-last weights for inference on the CPU, not for CPU training."""

import torch

from echokdm.device import channels_last


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))


def test_cpu_inference_stores_weights_channels_last_with_the_same_output():
    x = torch.rand(2, 3, 32, 32)
    plain = _net()
    fast = channels_last(_net(), torch.device("cpu"), inference=True)
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not fast[0].weight.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)


def test_cpu_training_keeps_the_default_layout():
    net = channels_last(_net(), torch.device("cpu"))
    assert net[0].weight.is_contiguous() and not net[0].weight.is_contiguous(memory_format=torch.channels_last)
