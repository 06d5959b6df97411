"""Where models run: one parser of ``--device auto|cpu|cuda[:N]`` and the CUDA speed-ups every command shares.

- :func:`resolve_device` turns the user's device string into a ``torch.device`` (a one-line
  :class:`~echokdm.errors.InputError` when CUDA is asked for but absent, or the GPU index does not exist);
- :func:`autocast` is bfloat16 autocast on CUDA (``precision="auto"`` or ``"bf16"``) and a no-op elsewhere;
- :func:`channels_last` stores a convolutional network's weights channels-last on CUDA (faster cuDNN kernels
  under bf16), and on the CPU for inference (oneDNN's channels-last convolutions: the sample's ES prediction
  about 7 % faster on 2 cores, outputs within 4e-6; per-study adaptation, which tunes a copy of such a network,
  3-10 % faster too); `echokdm train` on the CPU is left alone.

``precision="bf16"`` on the CPU also autocasts (the CPU tests exercise the bf16 code path that way).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from echokdm.errors import InputError

#: accepted --device values (``cuda:N`` too)
DEVICES = ("auto", "cpu", "cuda")
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` a command runs on.

    Args:
        name: ``auto`` (a GPU when CUDA is available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        local_rank: this process's rank on its node under ``torchrun``: ``auto`` and ``cuda`` take GPU
            ``local_rank`` (default: the current GPU).

    Returns:
        The device.

    Raises:
        InputError: an unknown name, CUDA requested on a machine without it, or a GPU index out of range.
    """
    text = str(name).strip().lower()
    base, _, index = text.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise InputError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if base == "cpu" or (base == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(
            f"device {text!r} requested but CUDA is not available on this machine; use --device cpu or auto"
        )
    n = torch.cuda.device_count()
    gpu = int(index) if index else (local_rank if local_rank is not None else torch.cuda.current_device())
    if gpu >= n:
        raise InputError(f"device cuda:{gpu} requested but this machine has {n} GPU(s) (cuda:0 to cuda:{n - 1})")
    return torch.device("cuda", gpu)


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`.

    Raises:
        InputError: any other value.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def uses_bf16(device: torch.device, precision: str = "auto") -> bool:
    """True when work on ``device`` runs under bfloat16 autocast: ``bf16`` always, ``auto`` on CUDA only."""
    return check_precision(precision) == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when :func:`uses_bf16`, else a context that does nothing."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(module: torch.nn.Module, device: torch.device, *, inference: bool = False) -> torch.nn.Module:
    """``module`` with its 4-D weights stored channels-last on CUDA, and on the CPU when it only runs
    ``inference`` (unchanged elsewhere); returns ``module``."""
    if device.type == "cuda" or (inference and device.type == "cpu"):
        module.to(memory_format=torch.channels_last)
    return module


__all__ = ["DEVICES", "PRECISIONS", "autocast", "channels_last", "check_precision", "resolve_device", "uses_bf16"]
