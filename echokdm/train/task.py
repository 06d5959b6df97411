"""What a model contributes to training: :class:`TrainTask`, and the shared optimisation settings.

A task knows its model, data, loss and validation metrics; the :class:`~echokdm.train.Trainer` does the
rest (seeding, devices, DDP, checkpoints, logs). A new model plugs in by subclassing :class:`TrainTask`
and adding one line to :data:`echokdm.train.registry.TASKS`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch.utils.data import Dataset

from echokdm.config import option


@dataclass
class TrainConfig:
    """Optimisation and run settings shared by every model (the ``train:`` section of a config)."""

    seed: int = option(0, "seed of weights, data order, augmentation and dropout; same seed, same run", 0, 2**32 - 1)
    epochs: int = option(10, "number of epochs; may be raised when resuming to train longer", 1)
    batch_size: int = option(16, "samples per optimisation step in each process", 1)
    lr: float = option(1e-3, "peak learning rate", 1e-12, 10.0)
    weight_decay: float = option(0.0, "decoupled weight decay (AdamW) or L2 penalty (SGD)", 0.0)
    optimizer: Literal["adamw", "sgd"] = option("adamw", "optimizer")
    schedule: Literal["constant", "cosine"] = option("cosine", "learning-rate schedule after warm-up (per step)")
    warmup_steps: int = option(0, "linear warm-up steps from 0 to lr", 0)
    min_lr_ratio: float = option(0.0, "cosine schedule floor as a fraction of lr", 0.0, 1.0)
    grad_clip: float = option(0.0, "clip the global gradient norm to this value; 0 = no clipping")
    num_workers: int = option(0, "data-loading worker processes per training process", 0, 64)
    threads: int = option(0, "torch CPU threads per process; 0 = torch's default (torchrun sets 1)")
    device: str = option("auto", "auto (the process's GPU when there is one), cpu, cuda or cuda:N")
    amp: bool = option(True, "bfloat16 autocast (and channels-last weights) on CUDA; ignored on CPU")
    val_every: int = option(1, "validate every this many epochs (and always after the last)", 1)
    keep_checkpoints: int = option(2, "how many epoch checkpoints to keep (the newest)")
    tensorboard: bool = option(True, "also log to TensorBoard when the tensorboard package is installed")
    init_weights: str = option(
        "", "start from these weights (shipped name or .safetensors path) to fine-tune; '' = random"
    )


@dataclass
class RunConfig:
    """Base of every model's configuration: a ``train:`` section plus the model's own sections."""

    train: TrainConfig = option(TrainConfig, "optimisation and run settings")


class TrainTask(abc.ABC):
    """A trainable model: its configuration type, network, data, loss and validation metrics.

    Args:
        cfg: the run configuration (an instance of :attr:`config_class`).
    """

    #: the dataclass of this task's configuration (a :class:`RunConfig` subclass)
    config_class: ClassVar[type[RunConfig]] = RunConfig
    #: validation metric that picks the best checkpoint, and whether higher ("max") or lower is better
    select_metric: ClassVar[str] = "loss"
    select_mode: ClassVar[Literal["max", "min"]] = "min"
    #: the configuration of a fine-tune (``--init`` without ``--config``), None: the defaults of :attr:`config_class`
    finetune_config: ClassVar[dict | None] = None

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    @abc.abstractmethod
    def build_model(self) -> torch.nn.Module:
        """A freshly initialised network (weights drawn from torch's global RNG)."""

    @abc.abstractmethod
    def train_dataset(self) -> Dataset:
        """The training set. If it has ``set_epoch(epoch)``, the trainer calls it before each epoch."""

    def val_dataset(self) -> Dataset | None:
        """The validation set, or None for no validation."""
        return None

    @abc.abstractmethod
    def training_step(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """The scalar loss of one batch (``model`` may be DDP-wrapped; call it, do not unwrap it)."""

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """Per-sample validation values of one batch: name -> (B,) tensor (averaged over the set).

        ``model`` is the plain network (never DDP-wrapped), in eval mode. NaN entries (e.g. Dice of a structure
        absent from a sample) are left out of the average.
        """
        raise NotImplementedError(f"{type(self).__name__} has a validation set but no validation_step")

    def export_config(self) -> dict:
        """What is needed to rebuild the network later (saved in the weights file's metadata)."""
        return {}
