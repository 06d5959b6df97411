"""What ``echokdm predict`` is asked: the target (:class:`PredictOptions`) and the weights (:class:`PredictWeights`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from echokdm.defaults import (
    DEFAULT_STEPS,
    EF_LIMITS,
    F2I_WEIGHTS,
    FLOW_VAE_WEIGHTS,
    K2F_STEPS,
    K2F_WEIGHTS,
    MAX_SEQUENCE_FRAMES,
    PRIOR_WEIGHTS,
    SEG_WEIGHTS,
)
from echokdm.errors import InputError

#: training task (``echokdm train TASK``) -> the role of its weights in a prediction
TASK_ROLES = {"seg": "seg", "flowae": "flow_vae", "k2f": "k2f", "f2i": "f2i"}


@dataclass(frozen=True)
class PredictWeights:
    """The weights a prediction uses: each a shipped name (sha256-checked) or a ``.safetensors`` path."""

    seg: str = SEG_WEIGHTS
    flow_vae: str = FLOW_VAE_WEIGHTS
    k2f: str = K2F_WEIGHTS
    f2i: str = F2I_WEIGHTS
    prior: str = PRIOR_WEIGHTS

    @classmethod
    def from_dir(cls, folder: str | os.PathLike) -> PredictWeights:
        """The weights of ``--weights``: a folder of files named like the shipped ones (``seg_a4c.safetensors``,
        ...), or one trained model (an ``echokdm train ... --out DIR`` folder, i.e. ``DIR/model.safetensors``,
        or such a file itself) in the role its task names (seg, flowae, k2f, f2i), shipped weights for the rest.

        Raises:
            InputError: the folder or one of the files is missing, or a trained model of a task predict does not use.
        """
        root = Path(folder)
        trained = root / "model.safetensors" if root.is_dir() else root
        if trained.suffix == ".safetensors" and trained.is_file():
            from echokdm.weights import load

            task = load(trained).task
            if task not in TASK_ROLES:
                raise InputError(f"{trained} holds a {task or 'unknown'!r} model; predict uses {', '.join(TASK_ROLES)}")
            return cls(**{TASK_ROLES[task]: str(trained)})
        if not root.is_dir():
            is_file = root.exists() or root.is_symlink()
            raise InputError(f"weights folder {root} " + ("is not a folder; --weights takes the folder of the "
                             ".safetensors files" if is_file else "does not exist"))
        paths = {f.name: root / f"{f.default}.safetensors" for f in fields(cls)}
        missing = [p.name for role, p in paths.items() if role != "prior" and not p.is_file()]
        if missing:
            raise InputError(f"weights folder {root} lacks {', '.join(missing)}")
        return cls(**{role: str(p) for role, p in paths.items()})


@dataclass
class PredictOptions:
    """What to predict (the options of ``echokdm predict``).

    Args:
        phase: ``"es"`` (source ED -> its ES) or ``"ed"`` (source ES -> its ED), the target observed in the loop;
            the default when neither ``target_ef`` nor ``keypoints`` is given is ``"es"``.
        target_ef: the EF (percent, within :data:`~echokdm.defaults.EF_LIMITS`) the predicted ES should show;
            keypoints from the motion prior.
        keypoints: a keypoint file (``echokdm metrics`` format, 40 keypoints, or 20 endocardial ones whose wall is
            then moved with them) with the target keypoints: its only frame, or its first frame marked ES.
        frames: number of frames of the sequence source -> target (alphas ``k / frames``); 1 = the target only;
            at most :data:`~echokdm.defaults.MAX_SEQUENCE_FRAMES`, and only as many as memory holds.
        seg: a segmentation of every frame of the loop, used instead of the built-in segmenter.
        source_frame: source frame index (default: ED of the first beat; ES for ``phase="ed"``).
        steps: denoising steps of F2I.
        k2f_steps: denoising steps of K2F.
        ef_check: make a prediction whose measured EF misses its keypoints' by more than
            :data:`~echokdm.defaults.EF_CHECK` points again with K2F held to the keypoints, and keep the closer one
            (:mod:`echokdm.predict.ef_check`); False: one prediction.
        seed: seed of the sampling noise (same seed, same pixels), 0 to 2^32 - 1.
        adapt: seconds of per-study adaptation before predicting (:mod:`echokdm.train.adapt`); None or 0: none.
        adapt_steps: the adaptation's step count itself (deterministic); ``adapt`` then only caps its time.

    Raises:
        InputError: more than one target, or a value out of its range.
    """

    phase: Literal["es", "ed"] | None = None
    target_ef: float | None = None
    keypoints: str | None = None
    frames: int = 1
    seg: str | None = None
    source_frame: int | None = None
    steps: int = DEFAULT_STEPS
    k2f_steps: int = K2F_STEPS
    ef_check: bool = True
    seed: int = 0
    adapt: float | None = None
    adapt_steps: int | None = None

    def __post_init__(self) -> None:
        given = [
            n
            for n, v in (("--phase", self.phase), ("--target-ef", self.target_ef), ("--keypoints", self.keypoints))
            if v is not None
        ]
        if len(given) > 1:
            raise InputError(f"give one target: {' or '.join(given)}, not both")
        if self.phase is None and not given:
            self.phase = "es"
        if self.phase not in (None, "es", "ed"):
            raise InputError(f"phase must be 'es' or 'ed', got {self.phase!r}")
        if self.target_ef is not None:
            self.target_ef = float(self.target_ef)
            if not (EF_LIMITS[0] <= self.target_ef <= EF_LIMITS[1]):
                raise InputError(
                    f"target EF must be between {EF_LIMITS[0]:g} and {EF_LIMITS[1]:g} %, got {self.target_ef:g}"
                )
        for name, value, low, high in (
            ("frames", self.frames, 1, MAX_SEQUENCE_FRAMES),
            ("steps", self.steps, 1, 1000),
            ("k2f_steps", self.k2f_steps, 1, 1000),
            ("seed", self.seed, 0, 2**32 - 1),
        ):
            if int(value) != value or not low <= value <= high:
                raise InputError(f"{name} must be an integer from {low} to {high}, got {value}")
        if self.adapt is not None and not (isinstance(self.adapt, (int, float)) and 0 <= self.adapt <= 3600):
            raise InputError(f"--adapt takes seconds from 0 to 3600, got {self.adapt}")
        if self.adapt_steps is not None and (int(self.adapt_steps) != self.adapt_steps or self.adapt_steps < 0):
            raise InputError(f"--adapt-steps takes a whole number >= 0, got {self.adapt_steps}")
        if self.source_frame is not None and (int(self.source_frame) != self.source_frame or self.source_frame < 0):
            raise InputError(f"source frame must be a non-negative integer, got {self.source_frame}")

    @property
    def mode(self) -> str:
        """``"phase"``, ``"target_ef"`` or ``"keypoints"``."""
        return "target_ef" if self.target_ef is not None else "keypoints" if self.keypoints is not None else "phase"

    @property
    def adapts(self) -> bool:
        """Whether a per-study adaptation runs before the prediction."""
        return bool(self.adapt_steps) if self.adapt_steps is not None else bool(self.adapt)

    @property
    def alphas(self) -> list[float]:
        """Fraction of the motion of each predicted frame: ``k / frames``."""
        return [k / self.frames for k in range(1, self.frames + 1)]
