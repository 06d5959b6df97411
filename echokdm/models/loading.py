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
    net = build(w.config)
    net.load_state_dict(w.state_dict)
    return net.eval().requires_grad_(False)


def load_diffusers_model(cls: type, weights: str | os.PathLike) -> torch.nn.Module:
    """A diffusers model (``AutoencoderKL``, ``UNet2DModel``) from echokdm weights, frozen."""
    return load_network(weights, cls.from_config)


def load_ofnet(weights: str | os.PathLike) -> OFNet:
    """OF-net from echokdm weights, frozen."""
    return load_network(
        weights, lambda cfg: OFNet(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    )


__all__ = ["load_diffusers_model", "load_network", "load_ofnet"]
