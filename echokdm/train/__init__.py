"""Everything about learning: the machinery shared by every model (configs, tasks, the DDP trainer,
checkpoints, registry, cache names) and each model's task and data (:mod:`.kdm` and :mod:`.pairs` for the
KDM models, :mod:`.seg` and :mod:`.seg_data` for the segmenter). The networks live in :mod:`echokdm.models`."""

from echokdm.train.checkpoint import load_checkpoint, save_checkpoint
from echokdm.train.distributed import DistContext, init_distributed, shutdown_distributed
from echokdm.train.registry import TASKS, configure, task_class, train
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
    "configure",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
    "shutdown_distributed",
    "task_class",
    "train",
]
