"""Training data of the segmenter: phantom frames with augmentation that spans real scanners and data sets.

Loops are simulated once per run (``echokdm.phantom``, either image-formation model) and kept as uint8 on
their own grid. Each training sample is one random frame, shown as another scanner or data set would show it
(field of view, echo-like synthesis from its label map, lossy coding: :mod:`echokdm.transforms.acquisition`,
:mod:`echokdm.transforms.synth`), mapped to the working grid by :class:`~echokdm.grid.SectorFit`
around its sector exactly as at inference, augmented on that grid, then histogram-equalised inside its
sector. Every random choice is a function of ``(train.seed, epoch, index)``, so resumed runs see the same
samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    Rand2DElasticd,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandCoarseDropoutd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandHistogramShiftd,
)
from torch.utils.data import DataLoader, Dataset

from echokdm.config import option
from echokdm.errors import InputError
from echokdm.grid import SectorFit
from echokdm.models.seg import equalize_frames
from echokdm.outputs import atomic_write
from echokdm.phantom import sample_params, simulate, split_seeds
from echokdm.progress import progress
from echokdm.train.cache import cache_key
from echokdm.transforms.acquisition import CANVAS_SIDES, RandFieldOfViewd, RandVideoCodingd
from echokdm.transforms.intensity import (
    RandHazed,
    RandMitralLeafletsd,
    RandOpenValved,
    RandShadowBandsd,
    RandSpeckled,
    RandTissueContrastd,
)
from echokdm.transforms.synth import RandEchoSynthesisd

#: bump when the content of cached loops changes
CACHE_VERSION = 3


@dataclass
class SegAugmentConfig:
    """Training augmentation aimed at real scanners (probabilities per sample; 0 turns one off)."""

    rotate_deg: float = option(12.0, "maximum in-plane rotation (degrees)")
    zoom: tuple[float, float] = option((0.7, 1.25), "zoom range (drawn per axis: mild aspect changes too)")
    translate_px: float = option(8.0, "maximum shift in working pixels")
    affine_prob: float = option(0.8, "probability of rotation/zoom/shift")
    flip_prob: float = option(0.5, "left-right flip (both A4C display conventions exist)")
    elastic_prob: float = option(
        0.0, "smooth non-rigid deformation of image and labels (cavity shapes the phantom lacks)", 0.0, 1.0
    )
    elastic_magnitude: tuple[float, float] = option(
        (0.8, 1.6), "MONAI Rand2DElastic magnitude range (control points 24 px apart: 0.8-1.6 moves borders ~3-5 px)"
    )
    tissue_contrast_prob: float = option(
        0.7, "per-structure echogenicity: grey clutter in all four chambers, independent myocardium/tissue gain"
    )
    leaflet_prob: float = option(0.0, "open mitral leaflets drawn in the LV base (the cavity ends at the annulus)")
    leaflets_in_systole: bool = option(True, "draw them in systole too (False: only between ES and the next ED)")
    open_valve_prob: float = option(0.0, "the closed valve's bright LV-LA border filled with blood (diastolic frames)")
    gamma: tuple[float, float] = option((0.5, 2.0), "gamma range of the contrast change")
    gamma_prob: float = option(0.5, "probability of a gamma change")
    bias_field_prob: float = option(0.3, "smooth gain field (time-gain compensation, lateral gain)")
    hist_shift_prob: float = option(0.3, "random non-linear intensity curve")
    blur_prob: float = option(0.3, "Gaussian blur (sigma 0.3-1.5 px)")
    speckle_prob: float = option(0.4, "multiplicative speckle of another grain")
    noise_prob: float = option(0.3, "additive Gaussian noise (std up to 0.05)")
    shadow_prob: float = option(0.3, "angular shadow/dropout bands from the apex", 0.0, 1.0)
    haze_prob: float = option(0.4, "near-field haze/clutter fading with depth")
    dropout_prob: float = option(0.2, "rectangular dropouts", 0.0, 1.0)
    view_prob: float = option(
        0.0,
        "another field of view before the working grid: zoom around the apex, shift, square crop "
        "(fan sides and bottom cut as in EchoNet-Dynamic), canvas of 112-256 px",
        0.0,
        1.0,
    )
    view_zoom: tuple[float, float] = option((0.9, 1.5), "zoom range of that view (1: the fan's depth fills the canvas)")
    synth_prob: float = option(
        0.0, "replace the frame by an echo-like image drawn from its label map (SynthSeg-style)", 0.0, 1.0
    )
    coding_prob: float = option(
        0.0, "lossy coding before the working grid: coarser source grid and JPEG (MJPEG)", 0.0, 1.0
    )
    coding_quality: tuple[int, int] = option((30, 95), "JPEG quality range")


@dataclass
class SegDataConfig:
    """Phantom loops the segmenter learns from (generated once per run, optionally cached on disk)."""

    train_loops: int = option(200, "training loops (seeds from split_seeds('train', n))")
    val_loops: int = option(8, "validation loops (seeds from split_seeds('val', n)); every frame is scored")
    frames_per_loop: int = option(8, "training samples drawn from each loop per epoch (random frames)")
    phantom: dict[str, Any] = option({}, "keyword arguments of echokdm.phantom.sample_params (size, frames, ...)")
    cache_dir: str = option(
        "", "folder caching the generated loops (uint8, their own grid; relative: inside --out); '' = none"
    )
    workers: int = option(1, "processes simulating phantom loops in parallel", 1, 64)


def simulate_loop(seed: int, overrides: dict[str, Any]) -> dict[str, np.ndarray]:
    """Simulate phantom loop ``seed`` (``sample_params`` keyword ``overrides``) on its own grid.

    Returns:
        ``frames`` (T, H, W) uint8, ``labels`` (T, H, W) uint8 phantom labels (0-6: CAMUS plus RV, RA and
        other tissue, which the augmentation needs; training targets map labels > 3 to 0), ``mask`` (H, W)
        bool, ``ef`` () float, ``ed`` and ``es`` frame indices.
    """
    loop = simulate(sample_params(seed, **overrides))
    return {
        "frames": np.round(np.clip(loop.frames, 0, 1) * 255).astype(np.uint8),
        "labels": np.asarray(loop.labels, np.uint8),
        "mask": np.asarray(loop.sector_mask, bool),
        "ef": np.float32(loop.ef),
        "ed": np.asarray(loop.ed, np.int64),
        "es": np.asarray(loop.es, np.int64),
    }


def to_working_grid(sample: dict[str, Any], size: int) -> dict[str, torch.Tensor]:
    """``image``, ``label`` and ``mask`` (1, H, W) mapped to the ``size`` working grid around the sector mask,
    as :meth:`echokdm.models.seg.LVSegmenter.prepare` maps a frame (labels nearest, mask thresholded)."""
    mask = _plain(sample["mask"])[0] > 0.5
    fit = SectorFit.from_mask(mask.numpy(), size)
    return {
        "image": fit.to_work(_plain(sample["image"]).float()[None])[0],
        "label": fit.to_work(_plain(sample["label"]).float()[None], mode="nearest")[0],
        "mask": (fit.to_work(mask.float()[None, None])[0] > 0.5).float(),
    }


def phantom_loops(
    split: str, n: int, overrides: dict[str, Any], cache_dir: str = "", workers: int = 1
) -> list[dict]:
    """``n`` loops of a phantom split: its first seeds that the phantom accepts.

    Args:
        split: ``train``, ``val`` or ``test``.
        n: number of loops.
        overrides: keyword arguments of ``sample_params`` (e.g. ``frames``, ``renderers``).
        cache_dir: folder of ``.npz`` files reused across runs ('' = no cache).
        workers: processes simulating loops in parallel.

    Returns:
        Loops as :func:`simulate_loop` returns them, in seed order (seeds whose parameters the phantom
        refuses, e.g. a heart too large for the drawn sector, are skipped).
    """
    return list(progress(_accepted_loops(split, n, overrides, cache_dir, workers), f"phantom {split} loops", total=n))


def _accepted_loops(
    split: str, n: int, overrides: dict[str, Any], cache_dir: str, workers: int
) -> Iterator[dict[str, np.ndarray]]:
    key = cache_key(CACHE_VERSION, overrides)
    done, start = 0, 0
    while done < n:
        seeds = [int(s) for s in split_seeds(split, n - done, start)]
        start += len(seeds)
        for loop in _made_or_cached(seeds, overrides, cache_dir, key, workers):
            if loop is not None:
                done += 1
                yield loop


class _LoopJobs(Dataset):
    """Phantom loops to simulate, as a dataset so that torch's DataLoader workers run them in parallel."""

    def __init__(self, jobs: list[tuple[int, dict[str, Any]]]) -> None:
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, np.ndarray] | None:
        return _work_loop_job(self.jobs[i])


def _as_is(item: Any) -> Any:
    return item


def _made_or_cached(
    seeds: list[int], overrides: dict[str, Any], cache_dir: str, key: str, workers: int
) -> Iterator[dict[str, np.ndarray] | None]:
    """Each seed's loop (None when the phantom refuses it), from the cache or simulated (``workers``
    DataLoader processes; 1 = in this process)."""
    paths = [Path(cache_dir) / f"seg_{key}_{s}.npz" if cache_dir else None for s in seeds]
    jobs = [(s, overrides) for s, p in zip(seeds, paths) if p is None or not p.is_file()]
    n_workers = workers if workers > 1 and len(jobs) > 1 else 0
    made = iter(DataLoader(_LoopJobs(jobs), batch_size=None, num_workers=n_workers, collate_fn=_as_is))
    for path in paths:
        if path is not None and path.is_file():
            with np.load(path) as z:
                yield {k: z[k] for k in z.files}
            continue
        loop = next(made)
        if loop is not None and path is not None:
            with atomic_write(path) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **loop)
        yield loop


def _work_loop_job(job: tuple[int, dict[str, Any]]) -> dict[str, np.ndarray] | None:
    torch.set_num_threads(1)
    try:
        return simulate_loop(*job)
    except InputError:  # parameters the phantom cannot render
        return None


def acquisition(cfg: SegAugmentConfig) -> Compose:
    """How other scanners and data sets show a frame, on the frame's own grid (before the working grid):
    field of view, echo-like synthesis from the labels, lossy coding of ``image``/``label``/``mask`` (1, H, W)."""
    keys = ["image", "label", "mask"]
    return Compose(
        [
            RandFieldOfViewd(keys, modes=("bilinear", "nearest", "nearest"), prob=cfg.view_prob, zoom=cfg.view_zoom,
                             sides=CANVAS_SIDES),
            RandEchoSynthesisd("image", prob=cfg.synth_prob),
            RandVideoCodingd("image", prob=cfg.coding_prob, quality=cfg.coding_quality),
        ]
    )


def augmentation(cfg: SegAugmentConfig) -> Compose:
    """Geometric and scanner-style intensity augmentation of ``image``/``label``/``mask`` (1, S, S) on the
    working grid."""
    keys = ["image", "label", "mask"]
    z0, z1 = cfg.zoom
    return Compose(
        [
            RandAffined(
                keys,
                prob=cfg.affine_prob,
                rotate_range=math.radians(cfg.rotate_deg),
                scale_range=((z0 - 1, z1 - 1), (z0 - 1, z1 - 1)),
                translate_range=(cfg.translate_px, cfg.translate_px),
                mode=("bilinear", "nearest", "nearest"),
                padding_mode="zeros",
            ),
            Rand2DElasticd(
                keys,
                spacing=(24, 24),
                magnitude_range=cfg.elastic_magnitude,
                prob=cfg.elastic_prob,
                mode=("bilinear", "nearest", "nearest"),
                padding_mode="zeros",
            ),
            RandFlipd(keys, prob=cfg.flip_prob, spatial_axis=1),
            RandTissueContrastd("image", label_key="label", prob=cfg.tissue_contrast_prob),
            # only when asked: a transform more in the list would change every later transform's random draws
            *([RandOpenValved("image", label_key="label", open_key="valve_open", prob=cfg.open_valve_prob)]
              if cfg.open_valve_prob > 0 else []),
            RandMitralLeafletsd(
                "image", label_key="label", open_key=None if cfg.leaflets_in_systole else "valve_open",
                prob=cfg.leaflet_prob,
            ),
            RandBiasFieldd("image", prob=cfg.bias_field_prob, coeff_range=(0.0, 0.3)),
            RandAdjustContrastd("image", prob=cfg.gamma_prob, gamma=cfg.gamma),
            RandHistogramShiftd("image", prob=cfg.hist_shift_prob, num_control_points=(4, 8)),
            RandHazed("image", prob=cfg.haze_prob),
            RandShadowBandsd("image", prob=cfg.shadow_prob),
            RandSpeckled("image", prob=cfg.speckle_prob),
            RandGaussianSmoothd("image", prob=cfg.blur_prob, sigma_x=(0.3, 1.5), sigma_y=(0.3, 1.5)),
            RandGaussianNoised("image", prob=cfg.noise_prob, std=0.05),
            RandCoarseDropoutd(
                "image",
                prob=cfg.dropout_prob,
                holes=1,
                max_holes=4,
                spatial_size=6,
                max_spatial_size=24,
                fill_value=0.0,
            ),
        ]
    )


class PhantomFrames(Dataset):
    """Single frames of loops on the working grid: ``{"image": (1, S, S) float32, "label": (1, S, S) int64}``.

    Args:
        loops: from :func:`phantom_loops`.
        size: working resolution.
        samples_per_loop: random frames per loop per epoch; None = every frame once, in order (validation).
        augment: (on the frame's own grid, on the working grid) augmentations, e.g. :func:`acquisition` and
            :func:`augmentation`; None for none.
        seed: base seed of the per-sample random choices.
    """

    def __init__(
        self,
        loops: list[dict],
        size: int,
        samples_per_loop: int | None,
        augment: tuple[Compose, Compose] | None,
        seed: int = 0,
    ) -> None:
        self.loops, self.size, self.samples_per_loop = loops, size, samples_per_loop
        self.augment, self.seed = augment, seed
        self.epoch = 0
        self.index = (
            None
            if samples_per_loop is not None
            else [(i, t) for i, lp in enumerate(loops) for t in range(len(lp["frames"]))]
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.loops) * self.samples_per_loop

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, i))
        if self.index is not None:
            li, t = self.index[i]
        else:
            li = i % len(self.loops)
            t = int(rng.integers(len(self.loops[li]["frames"])))
        loop = self.loops[li]
        sample = {
            "image": torch.from_numpy(loop["frames"][t][None].astype(np.float32) / 255.0),
            "label": torch.from_numpy(loop["labels"][t][None].astype(np.float32)),
            "mask": torch.from_numpy(loop["mask"][None].astype(np.float32)),
        }
        if self.augment is not None:
            self.augment[0].set_random_state(seed=int(rng.integers(2**31)))
            sample = self.augment[0](sample)
        sample = to_working_grid(sample, self.size)
        # phantom loops know their phases; frames of other sources count as open (their leaflets need an LA label)
        sample["valve_open"] = torch.tensor("ed" not in loop or not in_systole(t, loop["ed"], loop["es"]))
        if self.augment is not None:
            self.augment[1].set_random_state(seed=int(rng.integers(2**31)))
            sample = self.augment[1](sample)
        mask = _plain(sample["mask"]) > 0.5
        image = equalize_frames(_plain(sample["image"]).float()[None], mask[None])[0]
        label = _plain(sample["label"]).round().long()
        label[label > 3] = 0  # RV, RA and other tissue are background for the segmenter
        return {"image": image, "label": label, "valve_open": sample["valve_open"]}


def in_systole(t: int, ed: np.ndarray, es: np.ndarray) -> bool:
    """Frame ``t`` lies from an ED to the ES that follows it, both included (the mitral valve closed); before the
    loop's first event, when that event is an ES."""
    events = sorted([(int(i), "ED") for i in ed] + [(int(i), "ES") for i in es])
    before = [kind for i, kind in events if i <= t]
    if before:
        return before[-1] == "ED" or t in {int(i) for i in es}
    return bool(events) and events[0][1] == "ES"


def _plain(x: Any) -> torch.Tensor:
    """A plain tensor (MONAI transforms return MetaTensors, which collate slowly)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
