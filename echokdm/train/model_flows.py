"""Flows of trained models on the KDM training pairs: OF-net's estimates and the flows a K2F generates (cached).

:mod:`echokdm.train.kdm` attaches them to the pairs as ``model_flow`` when ``data.flow_source`` is ``ofnet`` or
``k2f``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from echokdm import weights
from echokdm.defaults import DEFAULT_STEPS
from echokdm.models.ofnet import OFNet
from echokdm.outputs import atomic_write
from echokdm.pipeline import CAVITY_TOLERANCE, EchoKDMPipeline
from echokdm.progress import progress
from echokdm.train.cache import cache_key


class PairData(Protocol):
    """What :func:`cached_k2f_flows` reads of the ``data:`` section (:class:`echokdm.train.kdm.PairDataConfig`)."""

    size: int
    n_keypoints: int | list[int]
    every: int
    cache_dir: str
    k2f_weights: str
    flow_vae_weights: str


def _frames(pairs, index: np.ndarray) -> torch.Tensor:
    """Frames ``index`` of a PairSet as a (B, 1, H, W) float32 batch in [0, 1]."""
    return torch.from_numpy(pairs.frames[index][:, None].astype(np.float32) / 255)


@torch.no_grad()
def ofnet_flows(net: OFNet, pairs, batch: int = 32) -> np.ndarray:
    """OF-net estimates for every pair of a PairSet: (P, 2, H, W) float16."""
    out = []
    for i in range(0, len(pairs.pairs), batch):
        idx = pairs.pairs[i : i + batch]
        out.append(net(_frames(pairs, idx[:, 0]), _frames(pairs, idx[:, 1])).numpy().astype(np.float16))
    return np.concatenate(out)


@torch.no_grad()
def k2f_flows(pipe: EchoKDMPipeline, pairs, seed: int, steps: int, batch: int = 32) -> np.ndarray:
    """The flows ``pipe`` generates in ``steps`` denoising steps from each pair's source frame and keypoints:
    (P, 2, H, W) float16."""
    out = []
    for i in progress(range(0, len(pairs.pairs), batch), "K2F flows of the pairs"):
        idx = pairs.pairs[i : i + batch]
        kps = [torch.from_numpy(pairs.keypoints[idx[:, j]].astype(np.float32)) for j in (0, 1)]
        flow = pipe.generate_flow(
            _frames(pairs, idx[:, 0]), *kps, steps, torch.Generator().manual_seed(seed * 1_000_003 + i)
        ).flow
        out.append(flow.numpy().astype(np.float16))
    return np.concatenate(out)


def cached_k2f_flows(d: PairData, split: str, n_loops: int, seed: int, pairs) -> np.ndarray:
    """:func:`k2f_flows` of the pipeline with ``d``'s K2F and flow autoencoder at the steps ``echokdm predict``
    uses by default (the cavity check included), read from / written to ``d.cache_dir`` (keyed by the pairs, the
    seed, the steps, the check's tolerance and the two weights files' sha256)."""
    key = cache_key(split, n_loops, d.size, d.n_keypoints, d.every, seed, DEFAULT_STEPS, CAVITY_TOLERANCE,
                    weights.load(d.k2f_weights).sha256, weights.load(d.flow_vae_weights).sha256)
    path = Path(d.cache_dir) / f"k2f_flows_{split}_{key}.npy"
    if path.exists():
        return np.load(path)
    flows = k2f_flows(EchoKDMPipeline.from_weights(d.flow_vae_weights, d.k2f_weights), pairs, seed, DEFAULT_STEPS)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.save(f, flows)
    return flows
