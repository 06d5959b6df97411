"""Training machinery shared by every echokdm model: configs, tasks, the DDP trainer, checkpoints, registry."""

from echokdm.train.checkpoint import load_checkpoint, save_checkpoint
from echokdm.train.distributed import DistContext, init_distributed, shutdown_distributed
from echokdm.train.registry import TASKS, task_class, train
from echokdm.train.task import RunConfig, TrainConfig, TrainTask
from echokdm.train.trainer import Trainer, TrainResult

__all__ = [
    "TASKS",
    "DistContext",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainTask",
    "Trainer",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
    "shutdown_distributed",
    "task_class",
    "train",
]
