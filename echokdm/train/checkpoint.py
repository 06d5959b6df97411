"""Checkpoints without pickle: model weights and optimizer tensors in safetensors, everything else in JSON.

A checkpoint is a folder::

    model.safetensors      the network's state_dict (float32 as trained)
    optimizer.safetensors  every tensor of the optimizer state, keyed ``state.<param index>.<name>``
    state.json             optimizer scalars and param_groups, epoch, step, best metric, config, ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from echokdm.errors import InputError
from echokdm.outputs import atomic_write
from echokdm.train.distributed import unwrap


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict of ``model`` (unwrapped from DDP) as contiguous CPU tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}


def optimizer_to_flat(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON-able data.

    Returns:
        ``(tensors, meta)`` with tensors keyed ``state.<param index>.<name>`` and ``meta`` holding the
        non-tensor per-parameter values and ``param_groups``.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state_dict["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_flat`: a state_dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    # JSON turned tuples (e.g. Adam's betas) into lists; give them back their torch form
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict
) -> Path:
    """Write a checkpoint folder (files first under temporary names, then renamed).

    Args:
        folder: the checkpoint folder (created).
        model: the network (DDP-wrapped or not).
        optimizer: its optimizer.
        info: JSON-able run state (epoch, step, best metric, ...), stored in ``state.json``.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_meta = optimizer_to_flat(optimizer.state_dict())
    with atomic_write(folder / "model.safetensors") as tmp:
        save_file(model_state(model), str(tmp))
    with atomic_write(folder / "optimizer.safetensors") as tmp:
        save_file(opt_tensors, str(tmp))
    with atomic_write(folder / "state.json") as tmp:
        tmp.write_text(json.dumps({**info, "optimizer": opt_meta}, indent=1))
    return folder


def load_checkpoint(
    folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Restore ``model`` (and ``optimizer``) from a checkpoint folder.

    Returns:
        The run state saved with it (``state.json`` without the optimizer part).

    Raises:
        InputError: a file is missing or does not fit the model.
    """
    folder = Path(folder)
    for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
        if not (folder / name).is_file():
            raise InputError(f"checkpoint {folder} has no {name}")
    try:
        unwrap(model).load_state_dict(load_file(str(folder / "model.safetensors")))
    except RuntimeError as e:
        raise InputError(f"checkpoint {folder} does not fit the model: {str(e).splitlines()[0]}") from None
    info = json.loads((folder / "state.json").read_text())
    meta = info.pop("optimizer")
    if optimizer is not None:
        tensors = load_file(str(folder / "optimizer.safetensors"))
        optimizer.load_state_dict(optimizer_from_flat(tensors, meta))
    return info
