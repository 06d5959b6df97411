"""Networks from echokdm weights files (shipped names, sha256-checked, or ``.safetensors`` paths).

A weights file carries the network's config in its metadata (:mod:`echokdm.weights`), so each loader
rebuilds the network from that config, loads the parameters and returns it frozen in eval mode. The
segmenter and the keypoint motion prior hold more than a network (working grid, fitted arrays) and are
read by their own constructors, ``LVSegmenter.from_pretrained`` and ``KeypointMotionPrior.load``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from echokdm.models.ofnet import OFNet
from echokdm.weights import load


def load_network(weights: str | os.PathLike, build: Callable[[dict], torch.nn.Module]) -> torch.nn.Module:
    """``build(config)`` with the parameters of ``weights`` loaded, frozen and in eval mode."""
    w = load(weights)
    return built_with(lambda: build(w.config), w.state_dict).eval().requires_grad_(False)


def built_with(build: Callable[[], torch.nn.Module], state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``build()`` holding the tensors of ``state_dict``, without drawing the random initial parameters first:
    the network is built on the ``meta`` device and takes the tensors as they are (a network with a tensor the
    state dict lacks, such as a non-persistent buffer, is built and loaded the usual way).

    Raises:
        RuntimeError: ``state_dict`` does not fit the network (``load_state_dict``'s missing and unexpected keys).
    """
    with torch.device("meta"):
        net = build()
    net.load_state_dict(state_dict, assign=True)
    if any(t.is_meta for t in (*net.parameters(), *net.buffers())):
        net = build()
        net.load_state_dict(state_dict)
    return net


def load_diffusers_model(cls: type, weights: str | os.PathLike) -> torch.nn.Module:
    """A diffusers model (``AutoencoderKL``, ``UNet2DModel``) from echokdm weights, frozen."""
    return load_network(weights, cls.from_config)


def load_ofnet(weights: str | os.PathLike) -> OFNet:
    """OF-net from echokdm weights, frozen."""
    return load_network(
        weights, lambda cfg: OFNet(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    )


__all__ = ["built_with", "load_diffusers_model", "load_network", "load_ofnet"]
