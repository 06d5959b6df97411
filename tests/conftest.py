"""Shared fixtures: tiny random-init model weights (so tests never depend on trained weights) and a phantom study."""

from __future__ import annotations

import os

# as the command line sets it (echokdm.cli), and before torch loads OpenMP here: idle threads sleep, not spin
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# one torch thread in this process and the commands it starts: the tiny test models run fastest on one, and
# `make test` runs two test processes on two cores (an explicit setting wins)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:  # torch loads only in the tests and fixtures that need it (collection and torch-free tests don't)
    import torch

#: working resolution of the tiny KDM models
TINY_SIZE = 32


def save_weights(path: Path, model: torch.nn.Module, task: str, config: dict) -> Path:
    """Write ``model`` as echokdm weights: safetensors with the task and network config in the metadata,
    as ``echokdm train`` writes them."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"task": task, "config": json.dumps(config)})
    return path


def synthetic_systoles(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    """ED -> ES trajectories (9, 40, 2) of bullet-shaped ventricles (apex up) that shorten and thicken."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, np.pi, 20)
    out = []
    for _ in range(n):
        width, length = rng.uniform(14, 20), rng.uniform(35, 45)
        short, thick = rng.uniform(0.08, 0.18), rng.uniform(0.2, 0.35)
        traj = []
        for f in np.linspace(0, 1, 9):
            w, h = width * (1 - thick * f), length * (1 - short * f)
            endo = np.stack([-w * np.cos(t), -h * np.sin(t)], 1)
            epi = np.stack([-(w + 6) * np.cos(t), -(h + 6) * np.sin(t)], 1)
            traj.append(np.concatenate([endo, epi]) + (64.0, 100.0))
        out.append(np.stack(traj))
    return out


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A folder of untrained weights named like the shipped ones (``seg_a4c``, ``kdm_flow_vae``, ``kdm_k2f``,
    ``kdm_f2i``, ``kdm_prior`` ``.safetensors``): the KDM models at 32x32, a small segmenter at 64x64 and a
    motion prior fitted on synthetic ventricles."""
    import torch

    from echokdm.config import config_to_dict
    from echokdm.models.f2i import build_f2i_unet
    from echokdm.models.flow_ae import build_flow_autoencoder
    from echokdm.models.k2f import build_k2f_unet
    from echokdm.models.prior import KeypointMotionPrior
    from echokdm.models.seg import SegModelConfig, build_network

    root = tmp_path_factory.mktemp("tiny_weights")
    torch.manual_seed(0)
    seg_cfg = SegModelConfig(size=64, channels=(4, 8, 16), strides=(2, 2), num_res_units=0)
    save_weights(root / "seg_a4c.safetensors", build_network(seg_cfg), "seg", config_to_dict(seg_cfg))
    for name, task, model in (
        ("kdm_flow_vae", "flowae", build_flow_autoencoder(TINY_SIZE)),
        ("kdm_k2f", "k2f", build_k2f_unet(TINY_SIZE // 4)),
        ("kdm_f2i", "f2i", build_f2i_unet(TINY_SIZE)),
    ):
        save_weights(root / f"{name}.safetensors", model, task, dict(model.config))
    KeypointMotionPrior.fit(synthetic_systoles(), n_phases=8).save(root / "kdm_prior.safetensors")
    return root


@dataclass
class PhantomStudy:
    """A phantom loop written as a DICOM cine, with its true labels as NIfTI."""

    dicom: Path
    labels_nii: Path
    labels: np.ndarray
    frames: np.ndarray
    ed: list[int]
    es: list[int]


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory) -> PhantomStudy:
    """A 20-frame, one-beat 128x128 phantom loop as ``study.dcm`` and its labels as ``labels.nii.gz``."""
    from echokdm.io import write_cine_dicom, write_label_sequence
    from echokdm.labels import camus_labels
    from echokdm.phantom import sample_params, simulate

    root = tmp_path_factory.mktemp("phantom_study")
    lp = simulate(sample_params(3, size=128, frames=20, n_beats=1))
    frames = (lp.frames * 255).round().astype(np.uint8)
    labels = camus_labels(lp.labels)
    write_cine_dicom(root / "study.dcm", frames, frame_time_ms=lp.frame_time_ms, spacing_mm=lp.spacing_mm)
    write_label_sequence(root / "labels.nii.gz", labels, lp.spacing_mm)
    return PhantomStudy(root / "study.dcm", root / "labels.nii.gz", labels, frames, list(lp.ed), list(lp.es))


def pytest_collection_modifyitems(config, items) -> None:
    """Longest test files first, each file's tests in their order. ``make test`` hands whole files to its two
    processes in this order (``--dist loadfile``), so the long files start early and the short ones fill the end
    (a long file last would leave the other process idle). A file's length is estimated from what collection
    knows: about 10 s per ``slow`` test and 0.1 s per other test."""
    cost: dict[Path, float] = {}
    for item in items:
        cost[item.path] = cost.get(item.path, 0.0) + (10.0 if item.get_closest_marker("slow") else 0.1)
    items.sort(key=lambda item: -cost[item.path])
