"""Training data sources of the segmenter: the phantom and a user's own data sets (``data.sources``).

A source is ``{kind, path, split, weight}`` (:class:`SourceConfig`; on the command line ``--data KIND:PATH``).
Labelled sources become *labelled loops* on their own grid, as :func:`echokdm.train.seg_data.simulate_loop`
returns them but holding only the labelled frames (ED and ES), so they get the same acquisition and
working-grid augmentation as the phantom's loops:

- ``camus``: both CAMUS releases, 2CH and 4CH views, the three structures (``partial`` False);
- ``echonet``: EchoNet-Dynamic's ED/ES tracings, the LV cavity only (``partial`` True: myocardium and LA are
  unknown there, see :class:`PartialLabelDiceCE`);
- ``phantom``: ``path`` is the number of loops (the phantom loops of :func:`~echokdm.train.seg_data.phantom_loops`);
- ``cine-folder``: unlabelled cines, for the self-supervised models; the segmenter refuses it.

:func:`source_loops` reads the cines of any non-phantom source without their labels, for the self-supervised KDM
models (OF-net and F2I, :mod:`echokdm.train.pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from monai.transforms import Compose
from torch.utils.data import ConcatDataset, Dataset

from echokdm.config import option
from echokdm.errors import InputError
from echokdm.progress import progress
from echokdm.train.seg_data import PhantomFrames, phantom_loops

KINDS = ("phantom", "echonet", "camus", "cine-folder")


@dataclass
class SourceConfig:
    """One training data source (an entry of ``data.sources``)."""

    kind: Literal["phantom", "echonet", "camus", "cine-folder"] = option("phantom", "what the folder holds")
    path: str = option("", "the data set's folder; for phantom, the number of loops")
    split: str = option("train", "train, val, test (the release's split, else a stable hash split) or all")
    weight: float = option(1.0, "samples drawn from this source per epoch, relative to data.frames_per_loop")


def parse_data_option(text: str) -> dict[str, Any]:
    """``KIND:PATH`` of ``echokdm train --data`` as a :class:`SourceConfig` mapping (``phantom:N``).

    Raises:
        InputError: no ``:``, an unknown kind, or ``phantom:`` without a positive number.
    """
    kind, sep, path = text.partition(":")
    if not sep or kind not in KINDS or not path:
        raise InputError(f"--data {text!r}: expected KIND:PATH with KIND one of {', '.join(KINDS)} (phantom:N)")
    if kind == "phantom" and not (path.isdigit() and int(path) > 0):
        raise InputError(f"--data {text!r}: phantom takes a number of loops, e.g. phantom:200")
    return {"kind": kind, "path": path}


def work_labelled(
    frames: np.ndarray, labels: dict[int, np.ndarray], mask: np.ndarray, partial: bool
) -> dict[str, Any]:
    """The labelled frames of one loop, on the loop's own grid (as :class:`PhantomFrames` takes loops: the
    acquisition augmentation works there, before the working grid).

    Args:
        frames: (T, H, W) float in [0, 1].
        labels: frame index -> (H, W) CAMUS label map (LV cavity = 1).
        mask: (H, W) sector mask.
        partial: the maps hold the LV cavity only.

    Returns:
        ``frames`` / ``labels`` (K, H, W) uint8 of the K labelled frames, ``mask`` (H, W) bool, ``partial``.
    """
    keys = sorted(labels)
    return {
        "frames": np.round(np.clip(np.asarray(frames[keys], np.float32), 0, 1) * 255).astype(np.uint8),
        "labels": np.stack([labels[t] for t in keys]).astype(np.uint8),
        "mask": np.asarray(mask, dtype=bool),
        "partial": partial,
    }


def labelled_loops(source: SourceConfig, split: str | None = None) -> list[dict[str, Any]]:
    """Every labelled loop of a ``camus`` or ``echonet`` source (``split`` overrides the source's).

    Raises:
        InputError: an unreadable data set, or a kind without labels.
    """
    split = split or source.split
    if source.kind == "echonet":
        from echokdm.data.echonet import echonet_datalist, load_echonet_item

        items = echonet_datalist(source.path, split)
        loops = []
        for item in progress(items, f"EchoNet {split} loops"):
            d = load_echonet_item(item)
            img = d["image"]
            labels = {int(item["ed"]): d["label_ed"], int(item["es"]): d["label_es"]}
            loops.append(work_labelled(img[0].numpy(), labels, img.meta["sector_mask"], partial=True))
        return loops
    if source.kind == "camus":
        from echokdm.data.camus import VIEWS, camus_datalist, load_camus_item

        items = [item for view in VIEWS for item in camus_datalist(source.path, view, split)]
        loops = []
        for item in progress(items, f"CAMUS {split} views"):
            d = load_camus_item(item)
            img = d["image"]
            labels = {item["ed"]: d["label_ed"], item["es"]: d["label_es"]}
            loops.append(work_labelled(img[0].numpy(), labels, img.meta["sector_mask"], partial=False))
        return loops
    raise InputError(f"data source {source.kind}: has no segmentation labels; the segmenter needs camus or echonet")


def source_loops(source: SourceConfig) -> list[dict[str, Any]]:
    """The cines of a ``cine-folder``, ``echonet`` or ``camus`` source's split, without labels (CAMUS: both views).

    Returns:
        One dict per cine: ``frames`` (T, H, W) float32 in [0, 1], blank outside the sector as
        :func:`echokdm.io.load_cine` gives them to ``echokdm predict``; ``mask`` (H, W) bool sector mask;
        ``frame_time_ms`` (None when unknown); ``name``.

    Raises:
        InputError: an unreadable data set, a phantom source, or no cine in the source's split.
    """
    if source.kind == "cine-folder":
        from echokdm.data.cines import cine_folder_datalist, load_cine_item

        found = cine_folder_datalist(source.path, source.split)
        items, load, what = found.items, load_cine_item, f"cine-folder {source.path}: {found.describe()}"
    elif source.kind == "echonet":
        from echokdm.data.echonet import echonet_datalist, load_echonet_item

        items, load, what = echonet_datalist(source.path, source.split), load_echonet_item, f"EchoNet {source.path}"
    elif source.kind == "camus":
        from echokdm.data.camus import VIEWS, camus_datalist, load_camus_item

        items = [item for view in VIEWS for item in camus_datalist(source.path, view, source.split)]
        load, what = load_camus_item, f"CAMUS {source.path}"
    else:
        raise InputError(f"data source {source.kind}: is not a folder of cines")
    if not items:
        raise InputError(f"{what}: no cine in split {source.split!r} (data.sources split: all takes every one)")
    loops = []
    for item in progress(items, f"{source.kind} {source.split} cines"):
        img = load(item)["image"]
        mask = np.asarray(img.meta["sector_mask"], dtype=bool)
        frames = np.asarray(img[0], dtype=np.float32) * mask
        loops.append({"frames": frames, "mask": mask, "frame_time_ms": img.meta.get("frame_time_ms"),
                      "name": str(item["image"])})
    return loops


class LabelledFrames(Dataset):
    """Labelled frames of :func:`labelled_loops`, as :class:`PhantomFrames` serves them, plus ``partial``
    (a (,) bool tensor: the label holds the LV cavity only)."""

    def __init__(
        self,
        loops: list[dict],
        size: int,
        samples_per_loop: int | None,
        augment: tuple[Compose, Compose] | None,
        seed: int = 0,
    ) -> None:
        self.frames = PhantomFrames(loops, size, samples_per_loop, augment, seed)
        self.partial = [bool(lp["partial"]) for lp in loops]

    def set_epoch(self, epoch: int) -> None:
        self.frames.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        f = self.frames
        li = f.index[i][0] if f.index is not None else i % len(f.loops)
        return {**f[i], "partial": torch.tensor(self.partial[li])}


class SourceFrames(ConcatDataset):
    """The frames of several sources, one after the other (``set_epoch`` reaches each)."""

    def set_epoch(self, epoch: int) -> None:
        for ds in self.datasets:
            ds.set_epoch(epoch)


def source_frames(
    sources: list[SourceConfig],
    split: str,
    size: int,
    samples_per_loop: int | None,
    augment: tuple[Compose, Compose] | None,
    seed: int,
    phantom: dict[str, Any],
    cache_dir: str = "",
    workers: int = 1,
) -> SourceFrames | None:
    """The segmenter's frames from ``sources``: ``split`` ``train`` uses each source's own split and draws
    ``samples_per_loop * weight`` random frames per loop; ``val`` serves every labelled frame of each source's
    validation split. None when no source has a loop in that split."""
    parts: list[Dataset] = []
    for i, src in enumerate(sources):
        per_loop = None if samples_per_loop is None else max(1, round(samples_per_loop * src.weight))
        if src.kind == "phantom":
            loops = phantom_loops(split, int(src.path), phantom, cache_dir, workers)
            loops = [{**lp, "partial": False} for lp in loops]
        else:
            loops = labelled_loops(src, src.split if split == "train" else split)
        if loops:
            parts.append(LabelledFrames(loops, size, per_loop, augment, seed + 7919 * i))
    return SourceFrames(parts) if parts else None


class PartialLabelDiceCE(torch.nn.Module):
    """Dice + cross-entropy that learns from fully and partially labelled samples in one batch.

    Fully labelled samples (CAMUS, phantom) get MONAI's ``DiceCELoss`` over the three structures. Samples whose
    label holds the LV cavity only (EchoNet tracings) get the marginal loss: the probabilities of background,
    myocardium and LA are summed into one "not LV" class (the unlabelled structures may be any of them), then
    cross-entropy over {not LV, LV} plus the Dice loss of the LV cavity. Each part is weighted by its share of
    the batch. An optional area term, the mean relative error of the soft LV-cavity area per sample
    (``|sum p_lv - sum t_lv| / sum t_lv`` over samples with a cavity), counters the shrinkage of every cavity
    toward a mean size (large ED cavities too small, small ES cavities too large: a negative EF bias) that
    the batch Dice and the pixel cross-entropy, both dominated by large cavities, leave. An optional wall term,
    the same error of the LV myocardium's area over the fully labelled samples, counters a wall read too thin
    where it thickens (at ES), whose pixels the cavity takes.

    Args:
        dice_weight: weight of the Dice terms.
        ce_weight: weight of the cross-entropy terms.
        area_weight: weight of the LV-cavity area term (0 = off).
        wall_area_weight: weight of the LV-myocardium area term (0 = off).
    """

    def __init__(
        self, dice_weight: float = 1.0, ce_weight: float = 1.0, area_weight: float = 0.0, wall_area_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.full = DiceCELoss(
            include_background=False, to_onehot_y=True, softmax=True, batch=True, lambda_dice=dice_weight,
            lambda_ce=ce_weight,
        )  # fmt: skip
        self.lv_dice = DiceLoss(include_background=True, batch=True)
        self.dice_weight, self.ce_weight, self.area_weight = dice_weight, ce_weight, area_weight
        self.wall_area_weight = wall_area_weight

    def forward(
        self, logits: torch.Tensor, label: torch.Tensor, partial: torch.Tensor, area_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """logits (B, 4, S, S), label (B, 1, S, S) integer classes, partial (B,) bool -> scalar loss; the area term
        weighs the samples of ``area_mask`` (B,) bool only, when given."""
        partial = partial.to(torch.bool)
        loss = logits.new_zeros(())
        n = logits.shape[0]
        if (~partial).any():
            loss = loss + self.full(logits[~partial], label[~partial]) * (~partial).sum() / n
        if partial.any():
            logp = F.log_softmax(logits[partial].float(), dim=1)
            lv_logp = logp[:, 1]
            other_logp = torch.logsumexp(logp[:, [0, 2, 3]], dim=1)
            target = (label[partial][:, 0] == 1).float()
            ce = -(target * lv_logp + (1 - target) * other_logp).mean()
            dice = self.lv_dice(lv_logp.exp()[:, None], target[:, None])
            loss = loss + (self.ce_weight * ce + self.dice_weight * dice) * partial.sum() / n
        if self.area_weight:
            loss = loss + self.area_weight * area_error(logits, label, LV, area_mask)
        if self.wall_area_weight:
            loss = loss + self.wall_area_weight * area_error(logits, label, MYO, ~partial)
        return loss


#: CAMUS classes of the area terms
LV, MYO = 1, 2


def area_error(logits: torch.Tensor, label: torch.Tensor, cls: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean relative error of class ``cls``'s soft area over the samples that hold it (0 if none).

    Args:
        logits: (B, 4, S, S) class logits.
        label: (B, 1, S, S) integer classes (1 = LV cavity, 2 = LV myocardium).
        cls: the class whose area is weighed.
        mask: (B,) bool, the samples to weigh (None: all).
    """
    area = torch.softmax(logits.float(), dim=1)[:, cls].flatten(1).sum(1)
    true = (label[:, 0] == cls).flatten(1).sum(1).float()
    has = true > 0 if mask is None else (true > 0) & mask.to(torch.bool)
    if not has.any():
        return logits.new_zeros(())
    return ((area[has] - true[has]).abs() / true[has]).mean()


__all__ = [
    "KINDS", "LabelledFrames", "PartialLabelDiceCE", "SourceConfig", "SourceFrames", "area_error", "labelled_loops",
    "parse_data_option", "source_frames", "source_loops", "work_labelled",
]
