"""Trainable models by name: ``echokdm train NAME`` looks the name up here.

A model plugs in by adding one entry ``name: "module:TaskClass"`` (imported only when used).
"""

from __future__ import annotations

import importlib
import os

from echokdm.config import load_config
from echokdm.errors import InputError
from echokdm.train.task import RunConfig, TrainTask
from echokdm.train.trainer import Trainer, TrainResult

#: model name -> "module:TrainTask subclass"
TASKS: dict[str, str] = {
    "seg": "echokdm.train.seg:SegTask",
    "ofnet": "echokdm.train.kdm:OFNetTask",
    "flowae": "echokdm.train.kdm:FlowAETask",
    "k2f": "echokdm.train.kdm:K2FTask",
    "f2i": "echokdm.train.kdm:F2ITask",
    "f2i-distil": "echokdm.train.distil:F2IDistilTask",
    "k2i": "echokdm.train.kdm:K2ITask",
}


def task_class(name: str) -> type[TrainTask]:
    """The :class:`TrainTask` subclass registered as ``name``.

    Raises:
        InputError: ``name`` is not registered.
    """
    if name not in TASKS:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def configure(
    name: str,
    config: str | os.PathLike | dict | None,
    sources: list[dict] | None = None,
    init: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
) -> RunConfig:
    """The run configuration of ``echokdm train NAME``: ``config`` (or the defaults; with ``init`` and no ``config``
    the task's :attr:`~echokdm.train.task.TrainTask.finetune_config`) with the command-line replacements.

    Args:
        name: registry name, e.g. ``"seg"``.
        config: YAML path, mapping, or None.
        sources: replace ``data.sources`` (``--data``: :class:`~echokdm.train.sources.SourceConfig` mappings).
        init: replace ``train.init_weights`` (``--init``: shipped name or weights file).
        epochs: replace ``train.epochs`` (``--epochs``).
        device: replace ``train.device`` (``--device``).

    Raises:
        InputError: an unknown model, a bad config, or ``sources`` for a model that cannot take them.
    """
    cls = task_class(name)
    if config is None and init is not None:
        config = cls.finetune_config
    cfg = load_config(config, cls.config_class)
    if sources is not None:
        if not hasattr(cfg, "data") or not hasattr(cfg.data, "sources"):
            raise InputError(f"--data: {name} has no data.sources")
        cfg.data.sources = load_config({"data": {"sources": sources}}, cls.config_class).data.sources
    if init is not None:
        cfg.train.init_weights = init
    if epochs is not None:
        cfg.train.epochs = epochs
    if device is not None:
        from echokdm.device import resolve_device

        resolve_device(device)  # a one-line error now, not after the data are read
        cfg.train.device = device
    return cfg


def train(
    name: str,
    config: str | os.PathLike | dict | None,
    out: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_epoch: int | None = None,
    sources: list[dict] | None = None,
    init: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train the model registered as ``name`` (alone, or as one rank under ``torchrun``).

    Args:
        name: registry name, e.g. ``"seg"``.
        config, sources, init, epochs, device: see :func:`configure`.
        out: output folder.
        resume: continue from the newest checkpoint in ``out``.
        overwrite: clear an existing echokdm folder first.
        stop_after_epoch: stop once this many epochs are done (to resume later).

    Returns:
        The :class:`~echokdm.train.trainer.TrainResult`.

    Raises:
        InputError: as :func:`configure`.
    """
    cfg = configure(name, config, sources, init, epochs, device)
    task = task_class(name)(cfg)
    return Trainer(task, out, resume=resume, overwrite=overwrite, name=name).fit(stop_after_epoch=stop_after_epoch)
