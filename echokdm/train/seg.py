"""``echokdm train seg``: the LV segmenter (:mod:`echokdm.models.seg`) on phantom loops (:mod:`.seg_data`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.losses import DiceCELoss

from echokdm.config import config_to_dict, option
from echokdm.models.seg import SegModelConfig, build_network, dice_per_class
from echokdm.train.seg_data import (
    PhantomFrames,
    SegAugmentConfig,
    SegDataConfig,
    acquisition,
    augmentation,
    phantom_loops,
)
from echokdm.train.task import RunConfig, TrainTask


@dataclass
class SegLossConfig:
    """Dice + cross-entropy (MONAI DiceCELoss over the three structures)."""

    dice_weight: float = option(1.0, "weight of the Dice term")
    ce_weight: float = option(1.0, "weight of the cross-entropy term")


@dataclass
class SegRunConfig(RunConfig):
    """Configuration of ``echokdm train seg``."""

    model: SegModelConfig = option(SegModelConfig, "network and working grid")
    data: SegDataConfig = option(SegDataConfig, "phantom training data")
    augment: SegAugmentConfig = option(SegAugmentConfig, "augmentation")
    loss: SegLossConfig = option(SegLossConfig, "loss")


class SegTask(TrainTask):
    """``echokdm train seg``: the segmenter on phantom loops, selected by validation LV-cavity Dice."""

    config_class = SegRunConfig
    select_metric = "dice_lv"
    select_mode = "max"

    def __init__(self, cfg: SegRunConfig) -> None:
        super().__init__(cfg)
        self.loss_fn = DiceCELoss(
            include_background=False,
            to_onehot_y=True,
            softmax=True,
            batch=True,
            lambda_dice=cfg.loss.dice_weight,
            lambda_ce=cfg.loss.ce_weight,
        )

    def build_model(self) -> torch.nn.Module:
        return build_network(self.cfg.model)

    def train_dataset(self) -> PhantomFrames:
        """Augmented random frames of the training loops."""
        c = self.cfg
        augment = (acquisition(c.augment), augmentation(c.augment))
        loops = self._loops("train", c.data.train_loops)
        return PhantomFrames(loops, c.model.size, c.data.frames_per_loop, augment, c.train.seed)

    def val_dataset(self) -> PhantomFrames | None:
        """Every frame of the validation loops, as at inference."""
        c = self.cfg
        if c.data.val_loops == 0:
            return None
        return PhantomFrames(self._loops("val", c.data.val_loops), c.model.size, None, None, c.train.seed)

    def _loops(self, split: str, n: int) -> list[dict]:
        d = self.cfg.data
        return phantom_loops(split, n, dict(d.phantom), d.cache_dir, d.workers)

    def training_step(self, model, batch, device):
        return self.loss_fn(model(batch["image"].to(device)), batch["label"].to(device))

    def validation_step(self, model, batch, device):
        logits = model(batch["image"].to(device))
        values = dice_per_class(logits.argmax(1).cpu(), batch["label"][:, 0].cpu())
        return {f"dice_{k}": v for k, v in values.items()}

    def export_config(self) -> dict:
        return config_to_dict(self.cfg.model)
